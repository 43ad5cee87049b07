"""A pipeline that several processes run at once on one workflow (test_concurrent_runs.py).

usage: python -m tests.integration.racing_pipeline STORAGE_DIR WORKFLOW_ID READY_DIR STEPS [--mode MODE]
Each process announces itself in READY_DIR and waits until two have, so both start together.
Each step returns {"id": new random id, "from": the previous step's id, "n": position}; the final
results are printed as JSON.
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
from dotflow.providers import StorageFile


@action
def link(previous_context):
    time.sleep(random.random() / 500)  # shuffle how the two processes interleave
    before = previous_context.storage
    return {"id": uuid.uuid4().hex, "from": before["id"] if before else None, "n": before["n"] + 1 if before else 0}


def wait_for_peers(ready_dir: Path, count: int) -> None:
    (ready_dir / str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(list(ready_dir.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage_dir")
    parser.add_argument("workflow_id")
    parser.add_argument("ready_dir", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--mode", default="sequential")
    parser.add_argument("--journal", default=None, help="a journal URL shared by the racing runs")
    args = parser.parse_args()

    config = Config(storage=StorageFile(path=args.storage_dir), journal=args.journal)
    flow = DotFlow(config=config, workflow_id=args.workflow_id)
    for position in range(args.steps):
        flow.task.add(step=link, task_id=f"link-{position}")
    wait_for_peers(args.ready_dir, 2)
    flow.start(resume=True, mode=args.mode)
    print(json.dumps([{"status": t.status, "restored": t.restored, "value": t.current_context.storage}
                      for t in flow.result_task()]))


if __name__ == "__main__":
    main()
