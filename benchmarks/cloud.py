"""HTTP requests and time per task on S3 and GCS, against the local test servers.

usage: .venv/bin/python -m benchmarks.cloud [TASKS] [REPEATS]     (from the repo root; defaults 50, 3)

Starts moto's S3 server and fake-gcs-server (as the tests do), runs a sequential workflow of TASKS
tasks REPEATS times on each backend, then resumes the last run in a new DotFlow, and prints the
requests the SDK sent (counted where it sends them) and the median time per task. Local servers
answer in about a millisecond: read the request counts, not the times, as what a real bucket costs.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Any

from dotflow import Config, DotFlow, action
from dotflow.providers import LogDefault, StorageGCS, StorageS3
from tests.servers import gcs_client, new_bucket_name, s3_client, start_fake_gcs, start_moto


@action
def step(previous_context):
    return {"n": (previous_context.storage or {}).get("n", 0) + 1, "pad": "x" * 200}


def build(storage: Any, workflow_id: str, tasks: int) -> DotFlow:
    quiet = LogDefault(level="WARNING")  # one line per task would drown the figures
    flow = DotFlow(config=Config(storage=storage, log=quiet), workflow_id=workflow_id)
    for position in range(tasks):
        flow.task.add(step=step, task_id=f"t{position}")
    return flow


class Requests(Counter):
    def s3_hook(self, request: Any, event_name: str, **_: Any) -> None:
        self[f"{request.method} {event_name.rsplit('.', 1)[-1]}"] += 1


def counting_session(requests: Requests) -> Any:
    import requests as http

    class Session(http.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            kind = "upload" if "/upload/" in url else "download" if "alt=media" in url else "other"
            requests[f"{method} {kind}"] += 1
            return super().request(method, url, *args, **kwargs)

    return Session()


def measure(name: str, storage: Any, requests: Requests, tasks: int, repeats: int) -> None:
    requests.clear()
    times = []
    for _ in range(repeats):
        workflow_id = f"bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        build(storage, workflow_id, tasks).start()
        times.append(time.perf_counter() - started)
    runs = dict(requests)
    requests.clear()
    started = time.perf_counter()
    resumed = build(storage, workflow_id, tasks)
    resumed.start(resume=True)
    resume_time = time.perf_counter() - started
    restored = sum(task.restored for task in resumed.result_task())
    per_task = {kind: count / (tasks * repeats) for kind, count in runs.items()}
    print(f"{name}: run of {tasks} tasks, median {statistics.median(times) * 1000 / tasks:.1f} ms/task; "
          f"requests per task {per_task}")  # fmt: skip
    print(f"{name}: resume in a new DotFlow: {restored}/{tasks} restored in {resume_time:.3f} s; "
          f"requests {dict(requests)}")  # fmt: skip


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    moto, gcs = start_moto(), start_fake_gcs()
    try:
        requests = Requests()
        client = s3_client(moto.url)
        bucket = new_bucket_name("bench")
        client.create_bucket(Bucket=bucket)
        s3 = StorageS3(bucket=bucket, client=client)
        client.meta.events.register("before-send.s3", requests.s3_hook)
        measure("S3 (moto)", s3, requests, tasks, repeats)

        gclient = gcs_client(gcs.url, _http=counting_session(requests))
        bucket = new_bucket_name("bench")
        gclient.create_bucket(bucket)
        measure("GCS (fake-gcs-server)", StorageGCS(bucket=bucket, client=gclient), requests, tasks, repeats)
    finally:
        moto.stop()
        gcs.stop()


if __name__ == "__main__":
    main()
