"""StorageFile's compare-and-set holds between processes (the other conditional writes are in the contract
and in test_conditional_races.py)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from dotflow.core.context import Context
from dotflow.providers import StorageFile


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
    workers = [context.Process(target=_swap_many, args=(str(tmp_path), 150)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert StorageFile(path=tmp_path).get("swapped").storage == 450
