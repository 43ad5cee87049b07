"""`dotflow journal verify --storage batch` is an audit: on a damaged or torn BatchStorage folder it
deletes, rewrites and creates nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dotflow import Context
from dotflow.cli import main
from dotflow.storage import batch_log
from dotflow.values.checkpoint_format import encode_document

STEPS = "tests.integration.cli_steps"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / "tasks").iterdir())}


@pytest.fixture
def batched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    url, path = f"sqlite:///{tmp_path / 'journal.db'}", tmp_path / "batched"
    status = main(["start", "--step", f"{STEPS}:greet", "--initial-context", "batch", "--storage", "batch",
                   "--path", str(path), "--journal", url, "--workflow-id", "batched", "--json"])  # fmt: skip
    assert status == 0, capsys.readouterr()
    capsys.readouterr()
    return url, path


def verify(url: str, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["journal", "verify", "--url", url, "--storage", "batch", "--path", str(path), "--json"])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_refuses_a_damaged_segment_and_changes_nothing(batched, capsys):
    url, path = batched
    [segment] = sorted((path / "tasks").glob(".batch-*.log"))
    data = bytearray(segment.read_bytes())
    data[data.index(b"dotflow-checkpoint") + 2] ^= 1
    segment.write_bytes(bytes(data))
    before = snapshot(path)
    status, _, err = verify(url, path, capsys)
    assert status == 2
    assert segment.name in err and "is damaged at byte" in err and "BatchStorage.repair" in err
    assert snapshot(path) == before


def test_verify_leaves_a_torn_newest_segment_and_the_lock_file_alone(batched, capsys):
    url, path = batched
    document = encode_document("batched-9-x.json", Context(storage=1), None, None, revision="r")
    data, _ = batch_log.encode_segment(99, [("batched-9-x.json", document, "r", None)])
    torn = path / "tasks" / ".batch-0000000000000099.log"
    torn.write_bytes(data[: len(data) // 2])
    (path / "tasks" / ".batch.lock").unlink()
    before = snapshot(path)
    status, out, err = verify(url, path, capsys)
    assert status == 0, err
    assert json.loads(out)["problems"] == 0
    assert snapshot(path) == before  # the torn segment is still there; no lock file was created
