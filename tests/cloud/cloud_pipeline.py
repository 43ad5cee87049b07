"""A chain pipeline run as its own process on S3 or GCS (test_cloud_end_to_end.py).

usage: python -m tests.cloud.cloud_pipeline SPEC_JSON WORKFLOW_ID RUN_LOG STEPS
           [--fail-at POSITION] [--ready DIR] [--mode MODE]

SPEC_JSON describes the storage (`tests.cloud.backends.storage_from_spec`). Step n returns
{"id": random id, "from": the id of step n-1's value, "n": n} and appends "n" to RUN_LOG when it
runs; the step at --fail-at raises. With --ready, the process announces itself in DIR and waits
for a second one, so two runs start together. The final tasks are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from pathlib import Path

from dotflow import Config, DotFlow, action
from tests.cloud.backends import storage_from_spec

ARGS = argparse.Namespace()


@action
def link(previous_context):
    before = previous_context.storage
    position = before["n"] + 1 if before else 0
    with open(ARGS.run_log, "a") as log:
        log.write(f"{position}\n")
    if position == ARGS.fail_at:
        raise RuntimeError(f"step {position} fails on purpose")
    time.sleep(random.random() / 200)  # shuffle how two racing processes interleave
    return {"id": uuid.uuid4().hex, "from": before["id"] if before else None, "n": position}


def wait_for_peer(ready: Path) -> None:
    (ready / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("workflow_id")
    parser.add_argument("run_log")
    parser.add_argument("steps", type=int)
    parser.add_argument("--fail-at", type=int, default=None)
    parser.add_argument("--ready", type=Path, default=None)
    parser.add_argument("--mode", default="sequential")
    parser.parse_args(namespace=ARGS)

    storage = storage_from_spec(json.loads(ARGS.spec))
    flow = DotFlow(config=Config(storage=storage), workflow_id=ARGS.workflow_id)
    for position in range(ARGS.steps):
        flow.task.add(step=link, task_id=f"link-{position}")
    if ARGS.ready is not None:
        wait_for_peer(ARGS.ready)
    manager = flow.start(resume=True, mode=ARGS.mode)
    if ARGS.mode == "background":
        manager.thread.join()
    print(json.dumps([
        {"status": t.status, "restored": t.restored, "value": t.current_context.storage}
        for t in flow.result_task()
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
