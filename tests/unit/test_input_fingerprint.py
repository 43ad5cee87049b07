"""Resume and on_input_change: the fingerprint travels with each checkpoint."""

from __future__ import annotations

import uuid

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.exception import InputChangedError, InvalidOnInputChange
from dotflow.values.fingerprint import fingerprint_of
from dotflow.storage.memory import StorageDefault

RUNS: list[object] = []


@action
def echo(initial_context):
    RUNS.append(initial_context.storage)
    return initial_context.storage


def run(storage, workflow_id, value, **kwargs):
    flow = DotFlow(config=Config(storage=storage), workflow_id=workflow_id)
    flow.task.add(step=echo, initial_context=value).add(step=echo, initial_context=value)
    flow.start(resume=True, **kwargs)
    return flow


@pytest.fixture
def first_run():
    RUNS.clear()
    storage, workflow_id = StorageDefault(), str(uuid.uuid4())
    run(storage, workflow_id, "v1")
    RUNS.clear()
    return storage, workflow_id


def test_same_input_restores(first_run):
    storage, workflow_id = first_run
    flow = run(storage, workflow_id, "v1", on_input_change="raise")
    assert RUNS == []
    assert flow.result_storage() == ["v1", "v1"]


def test_reuse_restores_despite_changed_input(first_run):
    storage, workflow_id = first_run
    flow = run(storage, workflow_id, "v2", on_input_change="reuse")
    assert RUNS == []
    assert flow.result_storage() == ["v1", "v1"]


def test_raise_refuses_changed_input_before_running_anything(first_run):
    storage, workflow_id = first_run
    with pytest.raises(InputChangedError) as raised:
        run(storage, workflow_id, "v2", on_input_change="raise")
    assert workflow_id in str(raised.value)
    assert RUNS == []


def test_reset_clears_checkpoints_and_runs_again(first_run):
    storage, workflow_id = first_run
    flow = run(storage, workflow_id, "v2", on_input_change="reset")
    assert RUNS == ["v2", "v2"]
    assert flow.result_storage() == ["v2", "v2"]
    assert all(not task.restored for task in flow.result_task())
    # the new checkpoints carry the new fingerprint: a third run with v2 restores them
    RUNS.clear()
    run(storage, workflow_id, "v2", on_input_change="raise")
    assert RUNS == []


def test_explicit_fingerprint_wins_over_inputs(first_run):
    storage, workflow_id = first_run
    with pytest.raises(InputChangedError):
        run(storage, workflow_id, "v1", on_input_change="raise", fingerprint="release-2")


def test_unknown_policy_is_refused():
    flow = DotFlow(workflow_id=str(uuid.uuid4()))
    flow.task.add(step=echo)
    with pytest.raises(InvalidOnInputChange, match="sometimes"):
        flow.start(on_input_change="sometimes")


def test_fingerprint_matches_1_0_1_for_json_inputs():
    import hashlib
    import json

    payloads = [{"b": 1, "a": [1, 2]}, None, "text", 2.5, True]
    expected = hashlib.sha256(json.dumps(payloads, sort_keys=True).encode()).hexdigest()
    assert fingerprint_of(payloads) == expected
    assert fingerprint_of([{1, 2}]) != fingerprint_of([{1, 3}])
    assert fingerprint_of([(1, 2)]) != fingerprint_of([[1, 2]])
    assert fingerprint_of([{"$set": [1]}]) != fingerprint_of([{1}])  # a user dict never passes for a tag


def test_reset_deletes_only_this_workflows_checkpoints():
    storage = StorageDefault()
    run(storage, "orders", "v1")
    run(storage, "orders-v2", "v1")  # its keys start with "orders-" too
    RUNS.clear()
    run(storage, "orders", "v2", on_input_change="reset")
    assert RUNS == ["v2", "v2"]
    RUNS.clear()
    run(storage, "orders-v2", "v1", on_input_change="raise")
    assert RUNS == []  # still restored: reset did not touch the other workflow
