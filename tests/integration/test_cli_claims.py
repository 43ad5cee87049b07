"""`dotflow start --claim task|workflow --claim-ttl SECONDS`, driven in-process through `main(argv)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dotflow.cli import main
from dotflow.providers import StorageFile

STEP = "tests.integration.cli_steps:greet"


def start(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    status = main(["start", "--step", STEP, "-i", "world", "--storage", "file", "--path", str(path),
                   "--workflow-id", "claimed", *extra])  # fmt: skip
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("scope", ["task", "workflow"])
def test_start_with_a_claim_runs_once_then_restores_and_leaves_no_lease(
    scope: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = start(capsys, tmp_path, "--resume", "--claim", scope, "--claim-ttl", "5", "--json")
    assert status == 0, err
    [task] = json.loads(out)["tasks"]
    assert (task["status"], task["restored"]) == ("Completed", False)
    status, out, err = start(capsys, tmp_path, "--resume", "--claim", scope, "--json")
    assert status == 0, err
    assert json.loads(out)["tasks"][0]["restored"] is True
    storage = StorageFile(path=tmp_path)
    assert storage.read_lease("claimed-0-greet.json") is None and storage.read_lease("claimed") is None
    assert storage.list_keys() == ["claimed-0-greet.json"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--claim", "task"), "--claim needs --resume"),
        (("--resume", "--claim-ttl", "5"), "--claim-ttl needs --claim"),
        (("--resume", "--claim", "task", "--claim-ttl", "0"), "--claim-ttl must be more than 0 seconds"),
        (("--resume", "--claim", "task", "--claim-ttl", "nan"), "--claim-ttl must be a finite number"),
    ],
)
def test_bad_claim_options_are_one_line_and_exit_2(
    extra: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = start(capsys, tmp_path, *extra)
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "tasks").exists() or StorageFile(path=tmp_path).list_keys() == []


def test_an_unknown_claim_scope_is_refused_by_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = start(capsys, tmp_path, "--resume", "--claim", "step")
    assert status == 2  # a usage error is one line, exit 2
    assert "invalid choice: 'step'" in err and "Traceback" not in err
