"""Read-then-write races through `uow.UnitOfWork` on every backend: one winner per round, no lost update.

Each racer opens its own unit, reads the counter through it (the unit remembers the version), waits
until every racer has read, then writes counter + 1 and commits. Exactly one commit per round may
succeed; the others raise `ConflictError` and write nothing. 8 threads share one storage object; 2
processes each build their own storage on the same folder or bucket (memory cannot be shared by
processes, so it races in threads only).
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from dotflow.core.context import Context
from dotflow.storage.memory import StorageDefault
from tests.cloud.backends import storage_from_spec
from uow import ConflictError, UnitOfWork

pytestmark = pytest.mark.slow

KEY = "wf-race-counter"


def race_round(storage: Any, me: int, barrier: Any) -> bool:
    """One round for one racer: True if its commit won."""
    unit = UnitOfWork(storage)
    stored = unit.get(KEY)
    count = stored.storage["count"] if stored is not None else 0
    barrier.wait(timeout=60)  # everyone has read the same version
    unit.put(KEY, Context(storage={"count": count + 1, "winner": me}))
    try:
        unit.commit()
        won = True
    except ConflictError as conflict:
        assert KEY in str(conflict)
        won = False
    barrier.wait(timeout=60)  # the round is over before anyone reads again
    return won


def check(storage: Any, winners: list[list[int]], rounds: int) -> None:
    assert [len(w) for w in winners] == [1] * rounds, f"winners per round: {winners}"
    assert storage.get(KEY).storage == {"count": rounds, "winner": winners[-1][0]}  # no lost update


def storages(request: pytest.FixtureRequest, tmp_path: Any, backend: str) -> tuple[Any, dict[str, str] | None]:
    if backend == "memory":
        return StorageDefault(), None
    if backend == "file":
        spec = {"backend": "file", "path": str(tmp_path / "store")}
    else:
        from tests.cloud.backends import GcsCloud, S3Cloud

        server = request.getfixturevalue("moto_server" if backend == "s3" else "fake_gcs_server")
        spec = (S3Cloud if backend == "s3" else GcsCloud)(server).spec()
    return storage_from_spec(spec), spec


@pytest.mark.parametrize("backend", ["memory", "file", "s3", "gcs"])
def test_eight_threads_one_winner_per_round(request, tmp_path, backend):
    storage, _ = storages(request, tmp_path, backend)
    threads, rounds = 8, 15
    barrier = threading.Barrier(threads)
    winners: list[list[int]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []

    def racer(me: int) -> None:
        try:
            for r in range(rounds):
                if race_round(storage, me, barrier):
                    winners[r].append(me)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=racer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert errors == []
    check(storage, winners, rounds)


def _process_racer(spec: dict[str, str], me: int, rounds: int, barrier: Any, results: Any) -> None:
    storage = storage_from_spec(spec)
    for r in range(rounds):
        results.put((r, me, race_round(storage, me, barrier)))


@pytest.mark.parametrize("backend", ["file", "s3", "gcs"])
def test_two_processes_one_winner_per_round(request, tmp_path, backend):
    _, spec = storages(request, tmp_path, backend)
    assert spec is not None
    rounds = 15
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_process_racer, args=(spec, n, rounds, barrier, results)) for n in range(2)]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * rounds)]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    winners: list[list[int]] = [[] for _ in range(rounds)]
    for r, me, won in outcomes:
        if won:
            winners[r].append(me)
    check(storage_from_spec(spec), winners, rounds)
