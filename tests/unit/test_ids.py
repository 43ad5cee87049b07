"""Workflow and task ids: invalid ones are refused with a clear error; a UUID has one canonical spelling."""

from __future__ import annotations

import uuid

import pytest

from dotflow import Config, DotFlow, Task, action
from dotflow.core.context import canonical_workflow_id
from dotflow.storage.memory import StorageDefault

RUNS: list[str] = []


@action
def extract():
    RUNS.append("extract")
    return "rows"


@pytest.mark.parametrize("bad", ["x\n", "nightly\n", "x\r", "a b", "-x", "ü"])
def test_a_workflow_id_with_a_forbidden_character_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid workflow_id") as raised:
        DotFlow(workflow_id=bad)
    assert repr(bad) in str(raised.value)


@pytest.mark.parametrize("bad", ["", 0, 0.0, False, []])
def test_a_falsy_workflow_id_is_refused_instead_of_becoming_random(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="Invalid workflow_id"):
        DotFlow(workflow_id=bad)


def test_none_means_a_random_workflow_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKFLOW_ID", raising=False)
    first, second = DotFlow(), DotFlow()
    assert isinstance(first.workflow_id, uuid.UUID) and first.workflow_id != second.workflow_id


def test_the_environment_variable_is_used_for_none_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_ID", "nightly-etl")
    assert DotFlow().workflow_id == "nightly-etl"
    monkeypatch.setenv("WORKFLOW_ID", "")
    assert isinstance(DotFlow().workflow_id, uuid.UUID)  # an empty variable counts as unset
    monkeypatch.setenv("WORKFLOW_ID", "bad id\n")
    with pytest.raises(ValueError, match="Invalid workflow_id"):
        DotFlow()


@pytest.mark.parametrize("bad", ["x\n", "step\n", "a/b", ""])
def test_a_task_id_ending_in_a_newline_or_with_a_separator_is_refused(bad: str) -> None:
    flow = DotFlow(workflow_id="ids")
    with pytest.raises(ValueError, match="Invalid task_id"):
        flow.task.add(step=extract, task_id=bad)
    with pytest.raises(ValueError, match="Invalid task_id"):
        Task(task_id=bad, step=extract)


def spellings(value: uuid.UUID) -> list[str]:
    text = str(value)
    return [text, text.upper(), "{" + text + "}", "urn:uuid:" + text, value.hex, value.hex.upper()]


def test_every_spelling_of_a_uuid_is_one_canonical_id() -> None:
    value = uuid.uuid4()
    assert {canonical_workflow_id(spelling) for spelling in spellings(value)} == {str(value)}
    assert canonical_workflow_id(value) == value
    assert canonical_workflow_id("Nightly-ETL") == "Nightly-ETL"  # names are kept as given


@pytest.mark.parametrize("bad", ["+" + "a" * 31, "a" * 31 + "\n", "uuid:" + "a" * 32, "urn:" + "a" * 32])
def test_uuid_lookalikes_that_python_would_parse_are_refused(bad: str) -> None:
    uuid.UUID(bad)  # Python's parser takes these...
    with pytest.raises(ValueError, match="Invalid workflow_id"):
        canonical_workflow_id(bad)  # ...but they are not UUID spellings, nor valid names


def test_a_resumed_run_finds_checkpoints_under_another_spelling_of_its_uuid() -> None:
    RUNS.clear()
    storage = StorageDefault()
    value = uuid.uuid4()
    keys = set()
    for spelling in spellings(value):
        flow = DotFlow(config=Config(storage=storage), workflow_id=spelling)
        flow.task.add(step=extract)
        flow.start(resume=True)
        keys.update(storage.list_keys())
    assert RUNS == ["extract"]  # the later spellings restored the first run's checkpoint
    assert keys == {f"{value}-0-extract"}


def test_a_hand_built_manager_checks_and_canonicalises_its_workflow_id() -> None:
    from dotflow.run.modes import Manager

    storage = StorageDefault()
    config = Config(storage=storage)
    for bad in ("", 0, "x\n"):
        with pytest.raises((ValueError, TypeError), match="Invalid workflow_id"):
            Manager(tasks=[Task(task_id="a", step=extract, config=config)], workflow_id=bad, config=config)
    value = uuid.uuid4()
    Manager(tasks=[Task(task_id="a", step=extract, config=config)], workflow_id=str(value).upper(), config=config)
    assert storage.list_keys() == [f"{value}-a"]
