"""Claims across real processes, on every backend (file, SQLite, PostgreSQL, and S3 and GCS on their
local servers): two workers resuming one workflow run each step once, and a worker paused
(SIGSTOP) past its lease adopts the checkpoint of the worker that took the step over.

Executions are counted by the steps themselves, one line each in an O_APPEND file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.postgres_server import PostgresServer
from tests.servers import LocalServer, gcs_client, new_bucket_name, s3_client

pytestmark = pytest.mark.slow

BACKENDS = ["file", "sqlite", "postgres", "s3", "gcs"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the workers keep their checkpoints: one fresh place per test."""
    name = request.param
    if name == "file":
        return {"backend": name, "where": str(tmp_path / "store")}
    if name == "sqlite":
        return {"backend": name, "where": f"sqlite:///{tmp_path}/checkpoints.db"}
    if name == "postgres":
        from uow.journal_migrate import upgrade
        from uow.sql_engine import make_engine

        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.new_database()
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return {"backend": name, "where": url}
    if name == "s3":
        moto: LocalServer = request.getfixturevalue("moto_server")
        bucket = new_bucket_name("claims")
        s3_client(moto.url).create_bucket(Bucket=bucket)
        return {"backend": name, "where": moto.url, "bucket": bucket}
    gcs: LocalServer = request.getfixturevalue("fake_gcs_server")
    bucket = new_bucket_name("claims")
    gcs_client(gcs.url).create_bucket(bucket)
    return {"backend": name, "where": gcs.url, "bucket": bucket}


def start_worker(spec: dict[str, Any], name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WORKER_NAME": name, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.claims_worker", json.dumps(spec)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def outcome(worker: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def executions(counts: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in counts.read_text().splitlines()) if counts.exists() else Counter()


def test_two_workers_run_each_step_once(backend: dict[str, Any], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    counts = tmp_path / "counts"
    spec = {
        **backend, "workflow": f"wf-{uuid.uuid4().hex[:8]}", "tasks": 6, "mode": "parallel", "ttl": 30,
        "on_held": "wait", "step_seconds": 0.3, "counts": str(counts), "ready_dir": str(ready), "peers": 2,
    }  # fmt: skip
    workers = [start_worker(spec, "a"), start_worker(spec, "b")]
    results = [outcome(worker) for worker in workers]
    assert executions(counts) == Counter({f"t{n}": 1 for n in range(6)})
    first, second = ([task["value"] for task in result["tasks"]] for result in results)
    assert first == second  # one value per task, whoever ran it
    assert {task["status"] for result in results for task in result["tasks"]} == {"Completed"}
    # Each task was run by one worker and adopted (waited for, then restored) by the other.
    ran_by = Counter(task["value"]["by"] for task in results[0]["tasks"])
    assert sum(ran_by.values()) == 6
    assert all(task["restored"] != other["restored"] for task, other in zip(results[0]["tasks"], results[1]["tasks"]))


def test_a_worker_paused_past_its_lease_adopts_the_winners_checkpoint(backend: dict[str, Any], tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    spec = {
        **backend, "workflow": f"wf-{uuid.uuid4().hex[:8]}", "tasks": 1, "mode": "sequential", "ttl": 2.5,
        "on_held": "wait", "step_seconds": 1.0, "counts": str(counts),
    }  # fmt: skip
    paused = start_worker(spec, "paused")
    try:
        deadline = time.monotonic() + 60
        while not executions(counts) and time.monotonic() < deadline:  # its step has started
            time.sleep(0.01)
        assert executions(counts) == Counter({"t0": 1}), "the first worker never started its step"
        os.kill(paused.pid, signal.SIGSTOP)  # its heartbeat stops too: its lease runs out
        winner = outcome(start_worker({**spec, "step_seconds": 0.0}, "winner"))
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    late = outcome(paused)
    (won,) = winner["tasks"]
    (adopted,) = late["tasks"]
    assert won["value"]["by"] == "winner" and not won["restored"]
    assert adopted["value"] == won["value"] and adopted["restored"] and adopted["status"] == "Completed"
    # At-least-once past an expired lease: both ran the step; exactly one checkpoint was committed.
    assert executions(counts) == Counter({"t0": 2})
    again = outcome(start_worker({**spec, "step_seconds": 0.0}, "third"))
    assert again["tasks"][0]["value"] == won["value"] and again["tasks"][0]["restored"]
    assert executions(counts) == Counter({"t0": 2})
