"""`dotflow start` as a user drives it (issue 16, items 6-8): a step in a file, imports that fail with
their real cause, `--quiet`, flags applied to a factory, `--resume` on the memory storage, paging of
`journal list`, and `journal` without the `sql` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dotflow.cli import main
from uow import Journal

STEPS = "tests.integration.cli_steps"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def no_journal_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOTFLOW_JOURNAL_URL", raising=False)


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def test_a_step_named_by_file_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "pipeline_in_a_file.py", """
        from dotflow import action

        @action
        def shout(initial_context):
            return {"said": str(initial_context.storage).upper()}
    """)
    status, out, err = run(capsys, "start", "--step", f"{file}:shout", "-i", "hi", "--json")
    assert status == 0, err
    [task] = json.loads(out)["tasks"]
    assert task["status"] == "Completed" and task["result"] == {"said": "HI"}


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ("no_such_module_anywhere:step", "no module named 'no_such_module_anywhere'"),
        (f"{STEPS}:no_such_step", "has no attribute 'no_such_step'"),
        ("{tmp}/needs_a_dependency.py:step", "no module named 'a_dependency_not_installed'"),
        ("{tmp}/not_there.py:step", "no file"),
        ("{tmp}/raises_on_import.py:step", "RuntimeError: configuration missing"),
    ],
)
def test_an_import_that_fails_names_its_real_cause(
    spec: str, cause: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "needs_a_dependency.py", "import a_dependency_not_installed\n")
    write(tmp_path / "raises_on_import.py", "raise RuntimeError('configuration missing')\n")
    status, out, err = run(capsys, "start", "--step", spec.format(tmp=tmp_path))
    assert status == 2 and out == ""
    assert err.startswith("dotflow: error: --step") and cause in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_quiet_prints_the_summary_line_only(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "start", "--step", f"{STEPS}:greet", "-i", "world", "--quiet")
    assert status == 0, err
    lines = out.strip().splitlines()  # (stderr has dotflow's log lines)
    assert len(lines) == 1 and "1 task(s): 1 completed" in lines[0] and "0-greet" not in lines[0]
    status, out, err = run(capsys, "start", "--step", f"{STEPS}:greet", "-i", "world")
    assert "0-greet" in out + err  # without --quiet, the table of tasks


def test_factory_flags_apply_to_the_workflow_it_returns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "factory.py", f"""
        from dotflow import Config, DotFlow
        from dotflow.providers import StorageFile
        from {STEPS} import greet

        def build():
            flow = DotFlow(config=Config(storage=StorageFile(path={str(tmp_path / "out")!r})), workflow_id="factory-id")
            flow.task.add(step=greet, initial_context="w")
            return flow
    """)
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal(url).close()
    status, out, err = run(capsys, "start", "-w", f"{file}:build", "--journal", url, "--workflow-id", "from-flag", "--json")
    assert status == 0, err
    assert json.loads(out)["workflow_id"] == "from-flag"
    journal = Journal(url)
    try:
        assert [unit.workflow_id for unit in journal.units()] == ["from-flag"]  # --journal reached the factory's flow
    finally:
        journal.close()
    status, out, err = run(capsys, "start", "-w", f"{file}:build", "--journal", url, "--workflow-id", "from-flag",
                           "--resume", "--json")  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["summary"]["restored"] == 1  # --resume too


def test_resume_on_the_memory_storage_warns(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "start", "--step", f"{STEPS}:greet", "-i", "world", "--resume")
    assert status == 0
    assert "dotflow: warning: --resume with the in-memory storage" in err and "nothing can be resumed" in err
    status, out, err = run(capsys, "start", "--step", f"{STEPS}:greet", "-i", "world")
    assert "warning" not in err


def test_journal_list_says_what_it_shows_and_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    for _ in range(3):
        status, _, err = run(capsys, "start", "--step", f"{STEPS}:greet", "-i", "w", "--storage", "file", "--path",
                             str(tmp_path / "out"), "--journal", url, "--workflow-id", "paged")  # fmt: skip
        assert status == 0, err
    status, out, err = run(capsys, "journal", "list", "--journal", url, "--limit", "1", "--offset", "1")
    assert status == 0, err
    assert "showing 2-2 of 3 units (--limit, --offset for more)" in out + err
    status, out, err = run(capsys, "journal", "list", "--journal", url, "--offset", "5")
    assert "no unit at offset 5 (there are 3)" in out + err
    status, out, err = run(capsys, "journal", "list", "--journal", url)
    assert "showing" not in out + err  # everything fits: no paging line
    status, out, err = run(capsys, "journal", "runs", "--journal", url, "--limit", "2")
    assert "showing 1-2 of 3 runs" in out + err
    status, out, _ = run(capsys, "journal", "list", "--journal", url, "--limit", "2", "--json")
    assert len(json.loads(out)) == 2  # JSON is the page alone


BLOCK_SQLALCHEMY = """
import sys
from importlib.abc import MetaPathFinder

class NoSQLAlchemy(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sqlalchemy" or name.startswith("sqlalchemy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoSQLAlchemy())
from dotflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", [["list"], ["runs"], ["verify", "--storage", "file", "--path", "."], ["upgrade"]])
def test_journal_without_the_sql_extra_fails_in_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "DOTFLOW_JOURNAL_URL": f"sqlite:///{tmp_path / 'j.db'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", BLOCK_SQLALCHEMY, "journal", *command],
                          capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dotflow: error: ") and done.stderr.endswith("pip install 'dotflow-uow[sql]'\n")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "j.db").exists()
