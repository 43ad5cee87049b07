"""A worker that resumes one workflow under a claim, as many of them do at once (test_claims_processes.py).

usage: python -m tests.integration.claims_worker SPEC_JSON

SPEC: backend ("file", "sqlite", "postgres", "s3", "gcs") and where (a folder, a database URL or
a server URL, with bucket), workflow, tasks, mode, scope, ttl, on_held, step_seconds, counts (a file
each step execution appends one line to, with O_APPEND: "<task> <pid>"), and optionally ready_dir
and peers (start together), started (a file each step appends "<task> <pid>" to before it works),
journal (a journal URL the run records its units and claims in).
Prints the tasks' outcomes as JSON, with the run's id.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dotflow import Claim, Config, Context, DotFlow, action

SPEC: dict[str, Any] = {}


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


@action
def work(initial_context: Context) -> dict[str, Any]:
    task = initial_context.storage
    append(SPEC["counts"], f"{task} {os.getpid()}")
    time.sleep(SPEC.get("step_seconds", 0.0))
    return {"task": task, "by": os.environ.get("WORKER_NAME", str(os.getpid()))}


def build_storage(spec: dict[str, Any]) -> Any:
    backend, where = spec["backend"], spec["where"]
    if backend == "file":
        from dotflow.providers import StorageFile

        return StorageFile(path=where)
    if backend in ("sqlite", "postgres"):
        from dotflow.providers import StorageSQL

        return StorageSQL(where)
    if backend == "s3":
        from dotflow.storage.s3 import StorageS3
        from tests.servers import s3_client

        return StorageS3(bucket=spec["bucket"], client=s3_client(where))
    if backend == "gcs":
        from dotflow.storage.gcs import StorageGCS
        from tests.servers import gcs_client

        return StorageGCS(bucket=spec["bucket"], client=gcs_client(where))
    raise ValueError(f"unknown backend {backend!r}")


def wait_for_peers(ready_dir: Path, count: int) -> None:
    (ready_dir / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(ready_dir.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.001)


def main() -> None:
    SPEC.update(json.loads(sys.argv[1]))
    storage = build_storage(SPEC)
    options: dict[str, Any] = {"max_workers": SPEC["max_workers"]} if SPEC.get("max_workers") else {}  # bounded parallel mode
    if SPEC.get("journal"):
        options["journal"] = SPEC["journal"]
    flow = DotFlow(config=Config(storage=storage, **options), workflow_id=SPEC["workflow"])
    for number in range(SPEC["tasks"]):
        flow.task.add(step=work, task_id=f"t{number}", initial_context=f"t{number}")
    if SPEC.get("ready_dir"):
        wait_for_peers(Path(SPEC["ready_dir"]), SPEC["peers"])
    claim = Claim(scope=SPEC.get("scope", "task"), ttl=SPEC.get("ttl", 30.0), on_held=SPEC.get("on_held", "wait"))
    started = time.perf_counter()
    manager = flow.start(resume=True, mode=SPEC.get("mode", "sequential"), claim=claim)
    seconds = time.perf_counter() - started
    tasks = [
        {"task_id": task.task_id, "status": task.status, "restored": task.restored, "value": task.current_context.storage}
        for task in flow.result_task()
    ]
    print(json.dumps({"seconds": seconds, "tasks": tasks, "run_id": manager.persistence.run_id}))


if __name__ == "__main__":
    main()
