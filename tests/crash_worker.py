"""One run of the crash trials' workflow (see tests/crash_trials.py), in a process of its own.

usage: python -m tests.crash_worker SPEC_JSON

SPEC_JSON holds: backend, where the storage and the journal are, workflow_id, tasks, mode, resume,
claims ("none", "task" or "workflow"), executions (a file each step appends "<task> <pid>" to, O_APPEND,
before it returns), results (where the finished run writes its results as JSON) and, optionally,
crash_at = [n, "before" | "after"]: the worker kills itself with SIGKILL right before, or right after,
its n-th checkpoint write (inside the commit: after the journal's intent, before its outcome).

It prints "started" once the storage and the journal are open, just before the run starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from dotflow import Config, DotFlow, action
from uow import Persistence

__all__ = ["build_storage", "chain", "journal_url"]

WRITES = ("post", "post_if", "post_many")


def chain(index: int, previous: Any) -> dict[str, int]:
    """A task's value: its index and a number that depends on every value before it in the sequence."""
    before = previous["chain"] if isinstance(previous, dict) else 0
    return {"i": index, "chain": (before * 31 + index + 1) % 1_000_003}


@action
def step(initial_context: Any, previous_context: Any) -> dict[str, int]:
    index = initial_context.storage
    fd = os.open(os.environ["CRASH_EXECUTIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{index} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    time.sleep(random.uniform(0, float(os.environ.get("CRASH_STEP_SECONDS", "0.004"))))
    return chain(index, previous_context.storage)


def build_storage(spec: dict[str, Any], *, read_only: bool = False) -> Any:
    """The storage the spec names (also used by the harness to read what a trial left)."""
    backend = spec["backend"]
    from dotflow.providers import BatchStorage, StorageFile, StorageSQL

    if backend == "file":
        return StorageFile(path=spec["path"])
    if backend == "batch":
        return BatchStorage(StorageFile(path=spec["path"]), read_only=read_only)
    if backend in ("sqlite", "postgresql"):
        return StorageSQL(spec["url"])
    from tests.servers import gcs_client, s3_client

    if backend == "s3":
        from dotflow.storage.s3 import StorageS3

        return StorageS3(bucket=spec["bucket"], prefix=spec["prefix"], client=s3_client(spec["url"]))
    from dotflow.storage.gcs import StorageGCS

    return StorageGCS(bucket=spec["bucket"], prefix=spec["prefix"], client=gcs_client(spec["url"]))


def journal_url(spec: dict[str, Any]) -> str:
    """SQL storages keep their journal in their own database (its entry written in the storage's
    transaction); the others have a SQLite journal file."""
    return spec["url"] if spec["backend"] in ("sqlite", "postgresql") else spec["journal"]


def _crashing(storage: Any, crash_at: list[Any] | None) -> Any:
    """`storage`, whose class is swapped for one that kills the process at the chosen write."""
    if not crash_at:
        return storage
    target, when = int(crash_at[0]), crash_at[1]
    count = {"writes": 0}

    def around() -> Iterator[None]:
        count["writes"] += 1
        if count["writes"] == target and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        yield
        if count["writes"] == target and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    base = type(storage)

    def wrap(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            with contextlib.contextmanager(around)():
                return getattr(base, name)(self, *args, **kwargs)

        return method

    namespace: dict[str, Any] = {name: wrap(name) for name in WRITES if hasattr(base, name)}
    if hasattr(base, "transaction"):  # SQL: a single-key commit shared with the journal runs in a transaction

        @contextlib.contextmanager
        def transaction(self: Any) -> Iterator[Any]:
            with contextlib.contextmanager(around)(), base.transaction(self) as inner:
                yield inner

        namespace["transaction"] = transaction
    if hasattr(base, "lease_transaction"):  # a claimed commit checks its lease in its own transaction

        @contextlib.contextmanager
        def lease_transaction(self: Any) -> Iterator[Any]:
            with contextlib.contextmanager(around)(), base.lease_transaction(self) as inner:
                yield inner

        namespace["lease_transaction"] = lease_transaction
    storage.__class__ = type(f"Crashing{base.__name__}", (base,), namespace)
    return storage


def claim_options(claims: str) -> dict[str, Any]:
    """`start()`'s claim argument for `--claims task|workflow`; nothing for "none"."""
    if claims == "none":
        return {}
    from dotflow import Claim

    # A short ttl: the lease a killed run leaves behind must expire before its resume can take the step.
    return {"claim": Claim(scope=claims, ttl=2.0)}


def main(spec: dict[str, Any], started: Any = None) -> None:
    os.environ["CRASH_EXECUTIONS"] = spec["executions"]
    if "step_seconds" in spec:
        os.environ["CRASH_STEP_SECONDS"] = str(spec["step_seconds"])
    storage = _crashing(build_storage(spec), spec.get("crash_at"))
    config = Config(storage=storage, journal=journal_url(spec), max_workers=2)
    flow = DotFlow(config=config, workflow_id=spec["workflow_id"])
    for index in range(spec["tasks"]):
        flow.task.add(step=step, initial_context=index)
    print("started", flush=True)
    if started is not None:
        started()
    claim = claim_options(spec.get("claims", "none"))
    # A claim needs resume=True; on a first run (nothing stored) that changes nothing but conditional commits.
    flow.start(resume=spec["resume"] or bool(claim), mode=spec["mode"], **claim)
    failed = [task.task_id for task in flow.result_task() if task.status != "Completed"]
    with open(spec["results"], "w", encoding="utf-8") as out:
        json.dump({"values": flow.result_storage(), "failed": failed}, out)
    Persistence(config.storage, config.journal).close()
    print("finished", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
