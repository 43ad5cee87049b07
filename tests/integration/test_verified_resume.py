"""Verified resume (issue 16, item 3): with a journal, `resume=True` compares every checkpoint it restores
with the checksum of its key's newest committed write, and stops before any step runs on a mismatch."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow import Config, Context, DotFlow, action
from dotflow.core.exception import CheckpointMismatchError
from dotflow.providers import StorageFile
from dotflow.run.journal_config import checkpoint_bytes
from uow import Journal, UnitOfWork

RAN: list[str] = []


@action
def extract():  # type: ignore[no-untyped-def]
    RAN.append("extract")
    return {"total": "2025.00"}


@action
def transform(previous_context):  # type: ignore[no-untyped-def]
    RAN.append("transform")
    return {"doubled": previous_context.storage["total"] * 2}


@action
def load(previous_context):  # type: ignore[no-untyped-def]
    RAN.append("load")
    return previous_context.storage


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


def pipeline(journal: Journal | None, folder: Path) -> DotFlow:
    flow = DotFlow(config=Config(storage=StorageFile(path=folder), journal=journal), workflow_id="audited")
    flow.task.add(step=[extract, transform, load])
    return flow


def first_run(journal: Journal, folder: Path) -> Path:
    pipeline(journal, folder).start()
    RAN.clear()
    return folder / "tasks"


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_an_untouched_checkpoint_is_restored(journal: Journal, tmp_path: Path) -> None:
    first_run(journal, tmp_path / "out")
    flow = pipeline(journal, tmp_path / "out")
    flow.start(resume=True)
    assert RAN == [] and all(task.restored for task in flow.result_task())


@pytest.mark.parametrize("damage", ["edited", "replaced by another key's file", "truncated"])
def test_a_checkpoint_changed_behind_the_journal_stops_the_run_before_any_step(
    damage: str, journal: Journal, tmp_path: Path
) -> None:
    tasks = first_run(journal, tmp_path / "out")
    target = tasks / "audited-0-extract.json"
    if damage == "edited":
        edit(target, "2025.00", "9025.00")  # still a valid checkpoint document
    elif damage == "replaced by another key's file":
        shutil.copy(tasks / "audited-2-load.json", target)
    else:  # a valid document whose value lost its content
        body = json.loads(target.read_text())
        body["value"]["$context"]["storage"] = {}
        target.write_text(json.dumps(body))
    [committed] = [u for u in journal.units(workflow_id="audited") if u.task_id == "0-extract"]
    with pytest.raises(CheckpointMismatchError) as raised:
        pipeline(journal, tmp_path / "out").start(resume=True)
    error = raised.value
    assert RAN == []  # nothing ran
    assert error.key == "audited-0-extract.json" and error.run_id == committed.run_id
    expected = journal.unit(committed.id).writes[0].checksum  # type: ignore[union-attr]
    assert error.expected == expected and error.found != expected and len(error.found) == 64
    assert error.key in str(error) and expected in str(error) and error.found in str(error)  # type: ignore[operator]


def test_a_document_whose_value_is_overridden_by_a_second_value_key_stops_the_run(
    journal: Journal, tmp_path: Path
) -> None:
    # The committed value's bytes stay where StorageFile wrote them, so their checksum matches; a
    # second "value" after the envelope's fields is the one a JSON reader keeps: the check must see it.
    tasks = first_run(journal, tmp_path / "out")
    target = tasks / "audited-0-extract.json"
    data = target.read_bytes()
    head = b'{"format":"dotflow-checkpoint","version":1,"value":'
    value = data[len(head) : data.rfind(b',"fingerprint":')]
    target.write_bytes(data[:-2] + b',"value":' + value.replace(b"2025.00", b"9025.00") + b"}\n")
    assert json.loads(target.read_bytes())["value"]["$context"]["storage"] == {"total": "9025.00"}
    with pytest.raises(CheckpointMismatchError):
        pipeline(journal, tmp_path / "out").start(resume=True)
    assert RAN == []


def test_a_reformatted_but_equal_checkpoint_is_restored(journal: Journal, tmp_path: Path) -> None:
    tasks = first_run(journal, tmp_path / "out")
    target = tasks / "audited-0-extract.json"
    target.write_text(json.dumps(json.loads(target.read_text()), indent=2))  # same value, other layout
    flow = pipeline(journal, tmp_path / "out")
    flow.start(resume=True)
    assert RAN == [] and flow.result_storage()[0] == {"total": "2025.00"}


def test_the_check_can_be_turned_off(journal: Journal, tmp_path: Path) -> None:
    tasks = first_run(journal, tmp_path / "out")
    edit(tasks / "audited-0-extract.json", "2025.00", "9025.00")
    flow = pipeline(journal, tmp_path / "out")
    flow.start(resume=True, verify_resume=False)
    assert RAN == [] and flow.result_storage()[0] == {"total": "9025.00"}


def test_a_key_the_journal_never_recorded_is_restored_with_a_warning(
    journal: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline(None, tmp_path / "out").start()  # before the journal existed
    RAN.clear()
    with caplog.at_level(logging.WARNING, logger="dotflow"):
        flow = pipeline(journal, tmp_path / "out")
        flow.start(resume=True)
    assert RAN == [] and all(task.restored for task in flow.result_task())
    assert "3 checkpoint(s) restored without a check: the journal never recorded them" in caplog.text


def test_nothing_is_asked_of_the_journal_when_not_resuming(journal: Journal, tmp_path: Path) -> None:
    first_run(journal, tmp_path / "out")
    asked: list[object] = []
    original = journal.last_writes
    journal.last_writes = lambda keys, **options: asked.append(keys) or original(keys, **options)  # type: ignore[method-assign]
    pipeline(journal, tmp_path / "out").start()
    assert asked == []
    pipeline(journal, tmp_path / "out").start(resume=True)
    assert len(asked) == 1  # one query for every restored key


# -- the crash window: a unit that wrote its checkpoint but whose outcome never reached the journal ------


class SnapshotAfterWrite(StorageFile):
    """A file storage that, right after a checkpoint write, copies the journal as a crash at that moment
    would leave it (the unit prepared, its outcome not written yet)."""

    def __init__(self, path: Path, journal_path: Path, snapshot: Path) -> None:
        super().__init__(path=path)
        self.journal_path, self.snapshot = journal_path, snapshot

    def post(self, key: str, context: Any, **options: Any) -> None:  # type: ignore[override]
        super().post(key, context, **options)
        self._snapshot()

    def post_if(self, key: str, context: Any, **options: Any) -> Any:
        written = super().post_if(key, context, **options)
        self._snapshot()
        return written

    def _snapshot(self) -> None:
        source, copy = sqlite3.connect(self.journal_path), sqlite3.connect(self.snapshot)
        source.backup(copy)
        source.close()
        copy.close()


def crashed_after_writing(tmp_path: Path, value: Any) -> tuple[Path, str]:
    """Run the pipeline once, then rewrite extract's checkpoint in a unit of work that 'crashes' after
    its storage write: the journal snapshot taken then, and the key."""
    folder, path, snapshot = tmp_path / "out", tmp_path / "journal.db", tmp_path / "crashed.db"
    journal = Journal(f"sqlite:///{path}", encode=checkpoint_bytes)
    first_run(journal, folder)
    key = "audited-0-extract.json"
    storage = SnapshotAfterWrite(folder, path, snapshot)
    with UnitOfWork(storage, journal=journal, workflow_id="audited", task_id="0-extract", attempt=2) as unit:
        unit.put(key, Context(storage=value))
    journal.close()
    return snapshot, key


def test_a_checkpoint_whose_outcome_never_reached_the_journal_is_restored_when_it_matches_the_intent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot, key = crashed_after_writing(tmp_path, {"total": "3000.00"})
    crashed = Journal(f"sqlite:///{snapshot}", encode=checkpoint_bytes)
    [last] = crashed.last_writes([key]).values()
    assert len(last.pending) == 1 and last.pending[0] != last.checksum  # the intent, newer than the commit
    with caplog.at_level(logging.WARNING, logger="dotflow"):
        flow = pipeline(crashed, tmp_path / "out")
        flow.start(resume=True)
    crashed.close()
    assert RAN == [] and flow.result_storage()[0] == {"total": "3000.00"}
    assert f"checkpoint {key!r}: restored; it was written by a unit whose outcome never reached the journal" in caplog.text


def test_a_checkpoint_matching_neither_the_commit_nor_the_intent_stops_the_run(tmp_path: Path) -> None:
    snapshot, key = crashed_after_writing(tmp_path, {"total": "3000.00"})
    edit(tmp_path / "out" / "tasks" / key, "3000.00", "9000.00")
    crashed = Journal(f"sqlite:///{snapshot}", encode=checkpoint_bytes)
    try:
        with pytest.raises(CheckpointMismatchError) as raised:
            pipeline(crashed, tmp_path / "out").start(resume=True)
    finally:
        crashed.close()
    assert RAN == [] and raised.value.key == key


def test_a_reserved_intent_whose_value_was_never_recorded_is_restored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, path, snapshot = tmp_path / "out", tmp_path / "journal.db", tmp_path / "crashed.db"
    journal = Journal(f"sqlite:///{path}", encode=checkpoint_bytes)
    first_run(journal, folder)
    journal.close()
    # the second run reserves its intents ahead (no checksums yet) and crashes after writing extract's checkpoint
    storage = SnapshotAfterWrite(folder, path, snapshot)
    journal = Journal(f"sqlite:///{path}", encode=checkpoint_bytes)
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="audited")
    flow.task.add(step=[extract, transform, load])
    flow.start()
    journal.close()
    RAN.clear()
    crashed = Journal(f"sqlite:///{snapshot}", encode=checkpoint_bytes)  # as the crash after load's write left it
    assert None in crashed.last_writes(["audited-2-load.json"])["audited-2-load.json"].pending
    with caplog.at_level(logging.WARNING, logger="dotflow"):
        flow = pipeline(crashed, folder)
        flow.start(resume=True)
    crashed.close()
    assert RAN == [] and all(task.restored for task in flow.result_task())
    assert "'audited-2-load.json': restored without a check; it was written by a unit whose outcome" in caplog.text
