"""Versions and conditional writes of the built-in storages (memory and files)."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from dotflow.abc.storage import VersionedStorage
from dotflow.core.context import Context
from dotflow.providers import StorageDefault, StorageFile


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> VersionedStorage:
    return StorageDefault() if request.param == "memory" else StorageFile(path=tmp_path)


def version(storage: VersionedStorage, key: str) -> str | None:
    checkpoint = storage.read_checkpoint(key)
    return None if checkpoint is None else checkpoint.version


def test_every_write_gives_a_new_version(storage: VersionedStorage) -> None:
    storage.post("k", Context(storage=1))
    first = version(storage, "k")
    storage.post("k", Context(storage=1))
    second = version(storage, "k")
    assert first and second and first != second


def test_post_if_writes_only_on_the_version_it_names(storage: VersionedStorage) -> None:
    assert storage.post_if("k", Context(storage="a"), version=None)
    assert not storage.post_if("k", Context(storage="b"), version=None)  # exists now
    seen = version(storage, "k")
    assert not storage.post_if("k", Context(storage="c"), version="not-" + str(seen))
    assert storage.get("k").storage == "a"
    assert storage.post_if("k", Context(storage="d"), version=seen, fingerprint="fp")
    checkpoint = storage.read_checkpoint("k")
    assert checkpoint is not None
    assert checkpoint.context.storage == "d" and checkpoint.fingerprint == "fp"
    assert checkpoint.version != seen


def test_delete_if(storage: VersionedStorage) -> None:
    assert storage.delete_if("k", version=None)  # absent, as expected
    storage.post("k", Context(storage=1))
    assert not storage.delete_if("k", version=None)
    assert not storage.delete_if("k", version="stale")
    assert storage.delete_if("k", version=version(storage, "k"))
    assert storage.read_checkpoint("k") is None


def test_threads_racing_on_one_key_have_exactly_one_winner_per_round(storage: VersionedStorage) -> None:
    storage.post("k", Context(storage=0))
    for round_number in range(1, 11):
        seen = version(storage, "k")
        barrier = threading.Barrier(8)
        wins: list[int] = []

        def contend(me: int) -> None:
            barrier.wait()
            if storage.post_if("k", Context(storage=me), version=seen):
                wins.append(me)

        threads = [threading.Thread(target=contend, args=(me,)) for me in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1, f"round {round_number}: winners {wins}"
        assert storage.get("k").storage == wins[0]


def test_an_expired_file_counts_as_absent_for_post_if(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path)
    storage.post("k", Context(storage="old"))
    target = storage.path / "k"
    body = json.loads(target.read_text())
    body["expires_at"] = 1.0  # long past
    target.write_text(json.dumps(body))
    assert storage.post_if("k", Context(storage="new"), version=None)
    assert storage.get("k").storage == "new"


def _increment_many(path: str, rounds: int, results: multiprocessing.Queue) -> None:
    storage = StorageFile(path=path)
    won = 0
    while won < rounds:
        checkpoint = storage.read_checkpoint("counter")
        assert checkpoint is not None
        if storage.post_if("counter", Context(storage=checkpoint.context.storage + 1), version=checkpoint.version):
            won += 1
    results.put(won)


@pytest.mark.slow
def test_two_processes_incrementing_one_file_lose_no_update(tmp_path: Path) -> None:
    StorageFile(path=tmp_path).post("counter", Context(storage=0))
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_increment_many, args=(str(tmp_path), 40, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert results.get() + results.get() == 80
    assert StorageFile(path=tmp_path).get("counter").storage == 80


def _swap_many(path: str, rounds: int) -> None:
    storage = StorageFile(path=path)
    won = 0
    while won < rounds:
        current = storage.get("swapped").storage
        if storage.atomic_swap("swapped", current, current + 1):
            won += 1


@pytest.mark.slow
def test_atomic_swap_of_two_processes_on_one_file_loses_no_update(tmp_path: Path) -> None:
    StorageFile(path=tmp_path).post("swapped", Context(storage=0))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_swap_many, args=(str(tmp_path), 40)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert StorageFile(path=tmp_path).get("swapped").storage == 80
