"""`dotflow schedule`, `logs`, `init`, `--version` and the 1.0.1 commands that are not shipped (in process)."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dotflow.cli import main
from dotflow.providers.scheduler_cron import SchedulerCron


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-v", "--version"):
        with pytest.raises(SystemExit) as done:
            main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == "dotflow==1.0.1"


@pytest.mark.parametrize("command", ["cloud", "deploy", "login", "logout"])
def test_cloud_commands_exit_2_with_one_line(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--platform", "lambda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"'{command}' is a dotflow 1.0.1 command this project does not ship" in err[0] and "README" in err[0]


def test_logs_prints_the_file_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "flow.log"
    text = "line [bold]not markup[/bold] :game_die:\nsecond\n"
    log.write_text(text)
    assert main(["logs", "--path", str(log)]) == 0
    assert capsys.readouterr().out == text
    assert main(["logs", "--path", str(tmp_path / "none.log")]) == 2
    assert "no log file at" in capsys.readouterr().err


def test_init_scaffolds_a_runnable_project_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    target = tmp_path / "shop"
    assert main(["init", "shop-etl", "--directory", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == [".gitignore", "README.md", "pipeline.py"]
    assert 'workflow_id="shop-etl"' in (target / "pipeline.py").read_text()
    monkeypatch.chdir(target)
    monkeypatch.syspath_prepend(str(target))
    import importlib

    pipeline = importlib.import_module("pipeline")
    flow = pipeline.build()
    flow.start()
    assert flow.result_storage()[-1] == {"loaded": 2}
    sys.modules.pop("pipeline", None)
    assert main(["init", "shop-etl", "--directory", str(target)]) == 2  # not empty
    assert main(["init", "../escape"]) == 2
    assert "invalid project name" in capsys.readouterr().err


def test_schedule_runs_until_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dotflow.cli import more_commands

    now = [datetime(2026, 1, 1)]
    made: list[SchedulerCron] = []
    real = SchedulerCron.__init__

    def keep(self: SchedulerCron, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        made.append(self)

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)
        if now[0] >= datetime(2026, 1, 1, 0, 2, 30):
            made[0].join()
            made[0].stop()

    monkeypatch.setattr(SchedulerCron, "__init__", keep)
    monkeypatch.setattr(more_commands, "SCHEDULER_OPTIONS", {"clock": lambda: now[0], "sleep": sleep})
    code = main(["schedule", "--step", "tests.integration.cli_steps:greet", "--cron", "* * * * *", "-i", "x",
                 "--storage", "file", "--path", str(tmp_path), "--overlap", "queue"])  # fmt: skip
    assert code == 0
    assert made[0].overlap == "queue" and made[0].runs_started in (2, 3)
    assert list((tmp_path / "tasks").iterdir())


def test_schedule_refuses_a_bad_cron(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "--step", "x:y", "--cron", "every day"]) == 2
    assert "Invalid cron expression" in capsys.readouterr().err
    assert threading.active_count() >= 1
