"""Workflows on a storage that buffers writes (`on_durable`, as BatchStorage offers) with a journal.

Every committed unit is confirmed only after the storage made its checkpoint durable, in every
mode; the end of a run flushes the storage, then writes the confirmed outcomes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.abc.storage import Storage
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.memory import StorageDefault
from uow import Journal

MODES = ("sequential", "background", "sequential_group", "parallel")


class BufferedMemory(Storage):
    """Posts wait in a buffer until `flush()`; reads see them; `on_durable` as BatchStorage defines it."""

    buffers_writes = True

    def __init__(self) -> None:
        super().__init__()
        self.durable = StorageDefault()
        self.buffer: dict[str, tuple[Any, int | None, str | None]] = {}
        self.callbacks: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.outcomes_seen_at_flush: list[int] = []
        self.journal: Journal | None = None  # when set, each flush first counts its committed entries
        self.flushed = threading.Event()

    def key(self, task: Any) -> str:
        return self.durable.key(task)

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        with self.lock:
            self.buffer[key] = (context, ttl, fingerprint)

    def get(self, key: str) -> Any:
        found = self.read_checkpoint(key)
        return None if found is None else found.context

    def read_checkpoint(self, key: str) -> Any:
        with self.lock:
            if key in self.buffer:
                context, _, fingerprint = self.buffer[key]
                from dotflow.abc.storage import Checkpoint

                return Checkpoint(context, fingerprint)
        return self.durable.read_checkpoint(key)

    def list_keys(self, prefix: str = "") -> list[str]:
        with self.lock:
            return sorted(set(self.durable.list_keys(prefix)) | {k for k in self.buffer if k.startswith(prefix)})

    def on_durable(self, callback: Callable[[], None]) -> None:
        with self.lock:
            if self.buffer:
                self.callbacks.append(callback)
                return
        callback()

    def flush(self) -> None:
        if self.journal is not None:  # what the journal holds as committed before this flush
            self.outcomes_seen_at_flush.append(len(self.journal.units(outcome="committed")))
        with self.lock:
            for key, (context, ttl, fingerprint) in self.buffer.items():
                self.durable.post(key, context, ttl=ttl, fingerprint=fingerprint)
            self.buffer.clear()
            callbacks, self.callbacks = self.callbacks, []
            for callback in callbacks:
                callback()
        self.flushed.set()


@action
def extract():  # type: ignore[no-untyped-def]
    return {"rows": [1, 2, 3]}


@action
def load():  # type: ignore[no-untyped-def]
    return "loaded"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(f"sqlite:///{tmp_path / 'journal.db'}", encode=checkpoint_bytes)
    yield opened
    opened.close()


def run(mode: str, journal: Journal, storage: BufferedMemory, workflow_id: str, groups: bool = True) -> None:
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id=workflow_id)
    flow.task.add(step=[extract, load], group_name="one" if groups else "default")
    flow.task.add(step=extract, group_name="two" if groups else "default")
    manager = flow.start(mode=mode)
    if mode == "background":  # the run's end (storage flush, then journal) follows in another thread
        manager.thread.join()
        assert storage.flushed.wait(timeout=30)
    assert [str(task.status) for task in flow.result_task()] == ["Completed"] * 3


def test_no_outcome_is_committed_before_the_storage_flushes(journal: Journal) -> None:
    storage = BufferedMemory()
    storage.journal = journal
    run("sequential", journal, storage, "wf", groups=False)
    assert storage.outcomes_seen_at_flush == [0]  # the run's one flush, at its end: nothing confirmed before
    assert {u.outcome for u in journal.units()} == {"committed"}
    assert {f.status for f in journal.verify(storage)} == {"backed"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_confirms_each_unit_after_the_flush(mode: str, journal: Journal) -> None:
    storage = BufferedMemory()
    storage.journal = journal
    run(mode, journal, storage, f"wf-{mode}")
    assert storage.outcomes_seen_at_flush == [0]
    if mode != "background":  # another process's view: every outcome written by the end of the run
        reader = Journal(journal.url)
        try:
            assert sorted(u.outcome for u in reader.units()) == ["committed"] * 3
        finally:
            reader.close()
    assert sorted(u.outcome for u in journal.units()) == ["committed"] * 3
    assert [f.status for f in journal.verify(storage)] == ["backed"] * 3
