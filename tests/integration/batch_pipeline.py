"""A pipeline on BatchStorage(StorageFile), run as its own process by test_batch_crash.py.

usage: python -m tests.integration.batch_pipeline STORAGE_DIR RUN_LOG --tasks N --max-batch B
                                                  [--kill-at STEP | --kill-in PHASE:BATCH]
Each step appends its number to RUN_LOG when it runs. --kill-at STEP: that step SIGKILLs the process.
--kill-in log:B / durable:B: SIGKILL while the B-th segment is being written (half of it is written) /
just after it is durable, before the index learns of it. --kill-in compact:0: the run ends with a
compaction, killed once the compacted segment is durable and before the old ones are removed. The
final state is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal

from dotflow import Config, DotFlow, action
from dotflow.providers import BatchStorage, StorageFile
from dotflow.storage import batch_segments

WORKFLOW_ID = "batch-crash-test"
ARGS = argparse.Namespace()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def make_step(number: int):
    @action
    def step(previous_context):
        with open(ARGS.run_log, "a") as log:
            log.write(f"{number}\n")
        if ARGS.kill_at == number:
            die()
        return {"step": number, "previous": previous_context.storage}

    step.__name__ = f"step{number}"
    return step


def arm_kill_in(phase: str, batch: int) -> None:
    """SIGKILL half-way through writing the `batch`-th segment ("log"), or just after it is durable
    and before anything else is done with it ("durable"; with "compact", the compacted segment)."""
    segments = [0]
    write_new_file = batch_segments.write_new_file

    def crashing_write(path, data, folder):
        if not path.name.endswith(".log"):
            return write_new_file(path, data, folder)
        segments[0] += 1
        compacted = b'"compacted":true' in data.split(b"\n", 1)[0]
        if phase == "log" and segments[0] == batch:
            with open(path, "wb") as half:
                half.write(data[: len(data) // 2])
            die()
        write_new_file(path, data, folder)
        if (phase == "durable" and segments[0] == batch) or (phase == "compact" and compacted):
            die()

    batch_segments.write_new_file = crashing_write


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage_dir")
    parser.add_argument("run_log")
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--max-batch", type=int, required=True)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--kill-in", default=None)
    parser.parse_args(namespace=ARGS)
    if ARGS.kill_in:
        phase, number = ARGS.kill_in.split(":")
        arm_kill_in(phase, int(number))

    with BatchStorage(StorageFile(path=ARGS.storage_dir), max_batch=ARGS.max_batch, max_delay=None) as storage:
        flow = DotFlow(config=Config(storage=storage), workflow_id=WORKFLOW_ID)
        flow.task.add(step=[make_step(number) for number in range(ARGS.tasks)])
        flow.start(resume=True)
        if ARGS.kill_in and ARGS.kill_in.startswith("compact"):
            storage.compact()
        print(json.dumps({
            "restored": [t.task_id for t in flow.result_task() if t.restored],
            "statuses": sorted({t.status for t in flow.result_task()}),
            "last": flow.result_storage()[-1]["step"],
        }))  # fmt: skip


if __name__ == "__main__":
    main()
