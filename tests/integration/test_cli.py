"""The `dotflow` command, driven in-process through `main(argv)`, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dotflow.cli import main

STEPS = "tests.integration.cli_steps"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    status, out, _ = run(capsys, *argv, "--json")
    return status, json.loads(out)


@pytest.fixture
def workflow(schema_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    """One successful run of `greet` (workflow "greetings") on StorageFile with the journal at schema_url."""
    status, out = run_json(
        capsys, "start", "--step", f"{STEPS}:greet", "--initial-context", "world", "--storage", "file",
        "--path", str(tmp_path / "out"), "--journal", schema_url, "--workflow-id", "greetings",
    )  # fmt: skip
    assert status == 0, out
    assert out["workflow_id"] == "greetings" and len(out["run_id"]) == 32  # type: ignore[index]
    assert out["summary"] == {"completed": 1, "restored": 0, "failed": 0, "adopted": 0}  # type: ignore[index]
    assert out["tasks"] == [  # type: ignore[index]
        {"task_id": "0-greet", "status": "Completed", "duration": out["tasks"][0]["duration"],  # type: ignore[index]
         "restored": False, "error": None, "result": {"greeting": "hello world"}},
    ]
    return schema_url, tmp_path / "out"


def test_start_records_the_unit_and_verify_is_clean(workflow: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, path = workflow
    status, units = run_json(capsys, "journal", "list", "--url", url)
    assert status == 0
    [unit] = units  # type: ignore[misc]
    assert (unit["workflow_id"], unit["task_id"], unit["attempt"], unit["outcome"]) == ("greetings", "0-greet", 1, "committed")
    status, report = run_json(capsys, "journal", "verify", "--url", url, "--path", str(path))
    assert status == 0
    assert report["problems"] == 0 and report["checked"] == 1  # type: ignore[index]
    status, out, _ = run(capsys, "journal", "verify", "--url", url, "--path", str(path))
    assert status == 0 and "all 1 key(s) are backed" in out


def test_verify_names_a_hand_edited_checkpoint_and_fails(workflow: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, path = workflow
    [checkpoint] = (path / "tasks").glob("*.json")
    body = json.loads(checkpoint.read_text())
    body["value"]["$context"]["storage"]["greeting"] = "hello mallory"
    checkpoint.write_text(json.dumps(body))  # still valid JSON, still a checkpoint document
    status, out, _ = run(capsys, "journal", "verify", "--url", url, "--path", str(path))
    assert status == 1
    assert "greetings-0-greet.json" in out and "changed" in out
    status, report = run_json(capsys, "journal", "verify", "--url", url, "--path", str(path))
    assert status == 1
    assert [(f["key"], f["status"]) for f in report["findings"]] == [("greetings-0-greet.json", "changed")]  # type: ignore[index]


def test_verify_reports_a_deleted_and_an_unjournalled_checkpoint(workflow: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, path = workflow
    [checkpoint] = (path / "tasks").glob("*.json")
    (path / "tasks" / "greetings-9-stray.json").write_bytes(checkpoint.read_bytes())
    checkpoint.unlink()
    status, report = run_json(capsys, "journal", "verify", "--url", url, "--path", str(path), "--workflow-id", "greetings")
    assert status == 1
    found = {f["key"]: f["status"] for f in report["findings"]}  # type: ignore[index]
    assert found == {"greetings-0-greet.json": "missing", "greetings-9-stray.json": "unbacked"}


def test_failed_attempts_are_listed_with_their_errors(schema_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, "start", "--step", f"{STEPS}:always_fails", "--journal", schema_url, "--workflow-id", "broken",
    )  # fmt: skip
    assert status == 1 and "the upstream API answered 503" in out
    status, units = run_json(capsys, "journal", "list", "--journal", schema_url, "--outcome", "failed")
    assert [(u["attempt"], u["error"]) for u in units] == [  # type: ignore[union-attr, index]
        (2, "RuntimeError: the upstream API answered 503"),
        (1, "RuntimeError: the upstream API answered 503"),
    ]
    assert run_json(capsys, "journal", "list", "--url", schema_url, "--outcome", "committed")[1] == []
    assert run_json(capsys, "journal", "list", "--url", schema_url, "--task", "other")[1] == []
    assert len(run_json(capsys, "journal", "list", "--url", schema_url, "--limit", "1")[1]) == 1  # type: ignore[arg-type]
    assert run_json(capsys, "journal", "list", "--url", schema_url, "--since", "2999-01-01")[1] == []


def test_show_fingerprints_and_timeline(workflow: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url, _ = workflow
    [unit] = run_json(capsys, "journal", "list", "--url", url)[1]  # type: ignore[misc]
    status, shown = run_json(capsys, "journal", "show", unit["unit_id"][:8], "--url", url)
    assert status == 0 and shown["unit_id"] == unit["unit_id"]  # type: ignore[index]
    [write] = shown["writes"]  # type: ignore[index]
    assert write["key"] == "greetings-0-greet.json" and write["operation"] == "put" and len(write["checksum"]) == 64
    status, out, _ = run(capsys, "journal", "show", unit["unit_id"], "--url", url)
    assert status == 0 and "greetings-0-greet.json" in out and "committed" in out
    [printed] = run_json(capsys, "journal", "fingerprints", "--url", url)[1]  # type: ignore[misc]
    assert printed["workflow_id"] == "greetings" and printed["fingerprint"] == write["fingerprint"]
    page = tmp_path / "timeline.html"
    status, out, _ = run(capsys, "journal", "timeline", "greetings", "--url", url, "--html", str(page))
    assert status == 0 and "0-greet" in out and "1:committed" in out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and 'data-outcome="committed"' in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_start_and_verify_with_the_sql_storage(schema_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run_json(
        capsys, "start", "--step", f"{STEPS}:greet", "--initial-context", "sql", "--storage", "sql",
        "--storage-url", schema_url, "--journal", schema_url, "--workflow-id", "in-sql",
    )  # fmt: skip
    assert status == 0
    status, report = run_json(capsys, "journal", "verify", "--url", schema_url, "--storage", "sql", "--storage-url", schema_url)
    assert status == 0 and report["checked"] == 1  # type: ignore[index]


def test_upgrade_creates_the_schema(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "journal", "upgrade", "--url", database_url)
    assert status == 0 and "to revision 0003" in out
    status, out, _ = run(capsys, "journal", "upgrade", "--url", database_url)
    assert status == 0 and "already at revision 0003" in out
    assert run_json(capsys, "journal", "list", "--url", database_url) == (0, [])


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["journal", "list"], 2, "no journal: pass --journal URL or set DOTFLOW_JOURNAL_URL"),
        (["journal", "list", "--url", "sqlite:///{tmp}/missing.db"], 2, "no journal at"),
        (["journal", "list", "--url", "sqlite:///{tmp}/j.db", "--since", "yesterday"], 2, "--since: not an ISO 8601 time"),
        (["journal", "show", "nope", "--url", "sqlite:///{tmp}/j.db"], 2, "no unit of work with id 'nope'"),
        (["journal", "timeline", "nobody", "--url", "sqlite:///{tmp}/j.db"], 2, "the journal has no workflow 'nobody'"),
        (["journal", "list", "--url", "mysql://x/y"], 2, "unsupported database 'mysql'"),
        (["start", "--step", "no.such.module:step"], 2, "no.such.module:step"),
        (["start", "--workflow", f"{STEPS}:not_a_workflow"], 2, "did not return a DotFlow"),
        (["start", "--workflow", f"{STEPS}:not_a_workflow", "--storage", "file"], 2, "--storage cannot be used"),
        (["start", "--step", f"{STEPS}:greet", "--step", f"{STEPS}:greet"], 2, "given more than once"),
        (["start", "--step", f"{STEPS}:greet", "--storage", "sql"], 2, "--storage sql needs --storage-url"),
        (["start", "--step", f"{STEPS}:greet", "--storage", "s3"], 2, "--storage s3 needs --bucket"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(
    argv: list[str], status: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("DOTFLOW_JOURNAL_URL", raising=False)
    from uow import Journal

    Journal(f"sqlite:///{tmp_path}/j.db").close()
    got, out, err = run(capsys, *[arg.format(tmp=tmp_path) for arg in argv])
    assert got == status
    assert err.startswith("dotflow: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_the_console_script(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    script = Path(sys.executable).with_name("dotflow")
    env = {**os.environ, "DOTFLOW_JOURNAL_URL": url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    started = subprocess.run(
        [str(script), "start", "--step", f"{STEPS}:greet", "--storage", "file", "--path", str(tmp_path / "out"),
         "--journal", url, "--workflow-id", "cli"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    listed = subprocess.run([str(script), "journal", "list", "--json"], capture_output=True, text=True, env=env)
    assert [u["outcome"] for u in json.loads(listed.stdout)] == ["committed"]
    broken = subprocess.run([str(script), "journal", "list", "--url", "sqlite:///" + str(tmp_path / "none.db")],
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert broken.returncode == 2 and broken.stderr.startswith("dotflow: error: no journal at")


@pytest.mark.slow
def test_start_and_verify_on_s3(
    cloud_s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    bucket = ["--storage", "s3", "--bucket", cloud_s3.bucket, "--prefix", "runs/", "--region", "us-east-1",
              "--endpoint-url", cloud_s3.server.url]  # fmt: skip
    status, _ = run_json(capsys, "start", "--step", f"{STEPS}:greet", "--initial-context", "s3", *bucket,
                         "--journal", url, "--workflow-id", "on-s3")  # fmt: skip
    assert status == 0
    assert run_json(capsys, "journal", "verify", "--url", url, *bucket)[0] == 0
    [name] = [n for n in cloud_s3.names() if n.startswith("runs/")]
    body = json.loads(cloud_s3.get_raw(name))
    body["value"]["$context"]["storage"]["greeting"] = "hello nobody"
    cloud_s3.put_raw(name, json.dumps(body).encode())
    status, report = run_json(capsys, "journal", "verify", "--url", url, *bucket)
    assert status == 1
    assert [(f["key"], f["status"]) for f in report["findings"]] == [("on-s3-0-greet", "changed")]  # type: ignore[index]


def test_start_and_verify_through_batch_storage(schema_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "batched")
    status, out = run_json(
        capsys, "start", "--step", f"{STEPS}:greet", "--initial-context", "batch", "--storage", "batch",
        "--path", path, "--journal", schema_url, "--workflow-id", "batched",
    )  # fmt: skip
    assert status == 0, out
    status, report = run_json(capsys, "journal", "verify", "--url", schema_url, "--storage", "batch", "--path", path)
    assert status == 0
    assert report["problems"] == 0 and report["checked"] == 1  # type: ignore[index]
    status, _, err = run(capsys, "journal", "verify", "--url", schema_url, "--storage", "file", "--path", path)
    assert status == 2
    assert "written through BatchStorage: use --storage batch" in err
