"""Two runs of one workflow at once, with resume=True: one consistent chain of checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageDefault, StorageFile

ROOT = Path(__file__).resolve().parents[2]


def race(tmp_path: Path, steps: int, *options: str) -> list[list[dict]]:
    """Two processes run the same `steps`-link chain on one StorageFile at once (released together);
    each one's task reports, after checking that both exited cleanly."""
    ready = tmp_path / "ready"
    ready.mkdir()
    command = [sys.executable, "-m", "tests.integration.racing_pipeline", str(tmp_path / "store"), "chain", str(ready),
               str(steps), *options]  # fmt: skip
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    return outputs


def test_a_task_committed_by_another_run_meanwhile_is_adopted_not_overwritten() -> None:
    storage = StorageDefault()

    @action
    def other_run_gets_there_first():
        rival = DotFlow(config=Config(storage=storage), workflow_id="race")
        rival.task.add(step=theirs, task_id="step")
        rival.start(resume=True)
        return "mine"

    @action
    def theirs():
        return "theirs"

    @action
    def after(previous_context):
        return f"after {previous_context.storage}"

    flow = DotFlow(config=Config(storage=storage), workflow_id="race")
    flow.task.add(step=other_run_gets_there_first, task_id="step")
    flow.task.add(step=after, task_id="next")
    flow.start(resume=True)
    first, second = flow.result_task()
    assert first.status == TypeStatus.COMPLETED and first.restored
    assert first.current_context.storage == "theirs"  # adopted
    assert storage.get("race-step").storage == "theirs"  # not overwritten
    assert second.current_context.storage == "after theirs"  # continued from the stored checkpoint


def test_without_resume_a_run_replaces_checkpoints() -> None:
    storage = StorageDefault()
    storage.post("plain-0-value", "old")

    @action
    def value():
        return "new"

    flow = DotFlow(config=Config(storage=storage), workflow_id="plain")
    flow.task.add(step=value)
    flow.start()
    assert storage.get("plain-0-value").storage == "new"
    assert not flow.result_task()[0].restored


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_two_processes_on_one_workflow_leave_one_consistent_chain(tmp_path: Path, mode: str) -> None:
    steps = 30
    outputs = race(tmp_path, steps, "--mode", mode)

    storage = StorageFile(path=tmp_path / "store")
    stored = [storage.get(f"chain-link-{position}.json").storage for position in range(steps)]
    for output in outputs:
        assert [task["status"] for task in output] == [TypeStatus.COMPLETED] * steps
        assert [task["value"] for task in output] == stored  # both runs end with the stored results
    if mode == "sequential":  # each stored value was computed from its predecessor's stored value
        assert stored[0]["from"] is None
        for position in range(1, steps):
            assert stored[position]["from"] == stored[position - 1]["id"], f"link {position} is from another chain"


@pytest.mark.slow
def test_two_processes_racing_with_one_journal_leave_every_key_backed(tmp_path: Path) -> None:
    """Both runs reserve intents for the same tasks; every write is conditional, the loser adopts:
    the journal must end with each key backed by the committed entry of the run that won it."""
    from dotflow.run.journal_config import checkpoint_bytes
    from uow import Journal

    steps = 20
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal(url).close()  # created at head once, before the race
    outputs = race(tmp_path, steps, "--journal", url)
    assert all([task["status"] for task in output] == [TypeStatus.COMPLETED] * steps for output in outputs)

    journal = Journal(url, encode=checkpoint_bytes)
    try:
        findings = journal.verify(StorageFile(path=tmp_path / "store"))
        assert [(f.key, f.status) for f in findings] == [(f"chain-link-{n}.json", "backed") for n in sorted(
            range(steps), key=lambda n: f"chain-link-{n}.json")]  # fmt: skip
        assert not journal.units(outcome="prepared")  # every reservation was used or released
        committed = journal.units(outcome="committed")
        assert sorted(unit.task_id for unit in committed) == sorted(f"link-{n}" for n in range(steps))
    finally:
        journal.close()


def test_a_failed_read_of_the_winners_checkpoint_fails_the_task_without_running_the_step_again() -> None:
    class ReadFailsAfterConflict(StorageDefault):
        def read_checkpoint(self, key: str):  # type: ignore[no-untyped-def]
            if self.conflicted:
                raise OSError("storage unreachable")
            return super().read_checkpoint(key)

        conflicted = False

    storage = ReadFailsAfterConflict()
    runs: list[int] = []

    @action(retry=3, retry_delay=0)
    def step():
        runs.append(1)
        storage.post("lost-step", "theirs")  # another run commits first
        storage.conflicted = True
        return "mine"

    flow = DotFlow(config=Config(storage=storage), workflow_id="lost")
    flow.task.add(step=step, task_id="step")
    flow.start(resume=True)
    task = flow.result_task()[0]
    assert task.status == TypeStatus.FAILED
    assert task.errors[-1].exception == "CheckpointNotSaved"
    assert "storage unreachable" in task.errors[-1].message
    assert len(runs) == 1
