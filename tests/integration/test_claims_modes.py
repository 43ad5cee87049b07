"""Claims in the child-process modes: a child takes its task's lease through its parent (the lease calls
are relayed like every other storage call), as a process of its own (a fresh owner id); on SQL its
claimed commit is checked in the parent's transaction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dotflow import Claim, Config, Context, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageFile
from dotflow.storage.memory import StorageDefault

pytestmark = pytest.mark.slow


@action
def owner_of_my_lease(initial_context: Context) -> Any:
    """The lease of this very task, as the child reads it while holding it."""
    storage, key = STORE["config"].storage, initial_context.storage  # in a child: its relay to the parent
    lease = storage.read_lease(key)
    return None if lease is None else lease.owner


STORE: dict[str, Any] = {}


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return StorageDefault() if request.param == "memory" else StorageFile(path=tmp_path)


def key_of(storage: Any, task_id: str) -> str:
    return f"wf-{task_id}.json" if isinstance(storage, StorageFile) else f"wf-{task_id}"


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_children_take_their_tasks_leases_skip_a_held_one_and_release_the_rest(storage: Any, mode: str) -> None:
    config = STORE["config"] = Config(storage=storage)
    flow = DotFlow(config=config, workflow_id="wf")
    for number in range(3):
        task_id = f"t{number}"
        flow.task.add(step=owner_of_my_lease, task_id=task_id, initial_context=key_of(storage, f"{task_id}"),
                      group_name=f"g{number}")  # fmt: skip
    storage.create_lease(key_of(storage, "t1"), owner="another-worker", ttl=60)
    manager = flow.start(resume=True, mode=mode, claim=Claim(on_held="skip"))
    statuses = {task.task_id: task.status for task in flow.task.queue}
    assert statuses == {"t0": TypeStatus.COMPLETED, "t1": TypeStatus.NOT_STARTED, "t2": TypeStatus.COMPLETED}
    assert sorted(task.task_id for task in manager.tasks) == ["t0", "t2"]
    owners = {task.task_id: task.current_context.storage for task in flow.task.queue if task.task_id != "t1"}
    assert all(owner and owner.count(":") == 2 for owner in owners.values())
    # Taken in a child process, under that process's own id (a child may run several tasks in turn).
    assert all(int(owner.split(":")[1]) != os.getpid() for owner in owners.values())
    assert storage.read_lease(key_of(storage, "t0")) is None and storage.read_lease(key_of(storage, "t2")) is None
    assert storage.read_lease(key_of(storage, "t1")).owner == "another-worker"


@action
def taken_over_while_running(initial_context: Context) -> str:
    """Runs in a child: while it works, "worker-b" takes its lease over (through the child's relay)."""
    relay, key = STORE["config"].storage, initial_context.storage
    seen = relay.read_lease(key)
    relay.replace_lease(key, version=seen.version, owner="worker-b", epoch=seen.epoch + 1, ttl=60)
    return "mine"


def test_a_child_whose_lease_changed_hands_cannot_commit_on_sql(tmp_path: Path) -> None:
    """parallel mode on SQLite: the child's commit is checked in the parent's transaction, so it is
    refused while worker-b holds the lease; the child waits, and adopts what worker-b commits."""
    from dotflow.providers import StorageSQL

    storage = StorageSQL(f"sqlite:///{tmp_path}/checkpoints.db")
    config = STORE["config"] = Config(storage=storage)
    flow = DotFlow(config=config, workflow_id="wf")
    flow.task.add(step=taken_over_while_running, task_id="t0", initial_context="wf-t0")
    seen_while_waiting: list[Any] = []

    def worker_b_commits(seconds: float) -> None:  # the child's wait: worker-b finishes meanwhile
        relay = STORE["config"].storage
        seen_while_waiting.append(relay.read_checkpoint("wf-t0"))
        lease = relay.read_lease("wf-t0")
        relay.post("wf-t0", Context(storage="worker-b's"))
        relay.delete_lease("wf-t0", version=lease.version)

    flow.start(resume=True, mode="parallel", claim=Claim(sleep=worker_b_commits, wait_timeout=60))
    (task,) = flow.task.queue
    assert task.status == TypeStatus.COMPLETED and task.restored
    assert task.current_context.storage == "worker-b's"
    assert storage.get("wf-t0").storage == "worker-b's"
    assert storage.read_lease("wf-t0") is None
    storage.close()
