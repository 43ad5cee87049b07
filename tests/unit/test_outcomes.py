"""Outcome names, verify statuses and their colours are defined once (`uow.outcomes`) and used everywhere."""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import uow
from dotflow.cli.output import OUTCOME_COLOURS
from dotflow.cli.parser import build_parser
from dotflow.cli.timeline import render_html
from uow import Journal, UnitOfWork
from uow.outcomes import CLAIM_EVENTS, COMMITTED, FINAL_OUTCOMES, JOURNAL_OUTCOMES, PREPARED, PROBLEMS, VERIFY_STATUSES

ROOT = Path(__file__).resolve().parents[2]


class Memory:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def post(self, key, context, ttl=None, fingerprint=None):  # type: ignore[no-untyped-def]
        self.values[key] = context

    def get(self, key):  # type: ignore[no-untyped-def]
        return self.values.get(key)


def test_the_names_are_distinct_and_grouped() -> None:
    assert len(set(JOURNAL_OUTCOMES)) == len(JOURNAL_OUTCOMES) == len(FINAL_OUTCOMES) + 1
    assert len(set(CLAIM_EVENTS)) == len(CLAIM_EVENTS) == 6 and uow.CLAIM_EVENTS is CLAIM_EVENTS
    assert PREPARED in JOURNAL_OUTCOMES and PREPARED not in FINAL_OUTCOMES
    assert set(PROBLEMS) < set(VERIFY_STATUSES) and len(set(VERIFY_STATUSES)) == 5
    assert uow.COMMITTED is COMMITTED and uow.JOURNAL_OUTCOMES is JOURNAL_OUTCOMES


def test_a_unit_and_its_journal_entry_use_the_names(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}", encode=lambda value: repr(value).encode())
    with UnitOfWork(Memory(), journal=journal, workflow_id="w", task_id="t") as unit:
        unit.put("k", 1)
    assert unit.state == COMMITTED
    journal.flush()
    assert [entry.outcome for entry in journal.units()] == [COMMITTED]
    journal.close()


def test_the_command_line_offers_every_journal_outcome_and_colours_each_one() -> None:
    parser = build_parser()
    args = parser.parse_args(["journal", "list", "--outcome", PREPARED])
    assert args.outcome == PREPARED
    choices = next(
        action.choices
        for group in parser._subparsers._group_actions  # type: ignore[union-attr]
        for command in [group.choices["journal"]]
        for sub in command._subparsers._group_actions  # type: ignore[union-attr]
        for action in sub.choices["list"]._actions
        if action.dest == "outcome"
    )
    assert tuple(choices) == JOURNAL_OUTCOMES
    assert tuple(OUTCOME_COLOURS) == JOURNAL_OUTCOMES  # one colour map, every outcome in it, in order
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    units = [SimpleNamespace(id="u", task_id="t", attempt=1, outcome=COMMITTED, started_at=now, finished_at=now, error=None,
                             run_id=None)]
    page = render_html("w", units)
    for outcome in JOURNAL_OUTCOMES:
        assert f'fill="{OUTCOME_COLOURS[outcome].html}"' in page and f">{outcome}<" in page


def test_no_outcome_is_spelled_out_in_the_code() -> None:
    """Outside uow/outcomes.py, no module of uow, dotflow.cli or dotflow.run writes an outcome name (or a
    claim event's) as a string literal."""
    names = set(JOURNAL_OUTCOMES) | set(VERIFY_STATUSES) | set(CLAIM_EVENTS)
    spelled = []
    folders = (ROOT / "uow", ROOT / "dotflow" / "cli", ROOT / "dotflow" / "run")
    for path in [p for folder in folders for p in sorted(folder.glob("*.py"))]:
        if path.name == "outcomes.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        spelled += [
            f"{path.name}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
        ]
    assert spelled == []


def test_every_claim_event_has_a_mark_of_its_own_and_an_option() -> None:
    from dotflow.cli.output import CLAIM_COLOURS

    assert tuple(CLAIM_COLOURS) == CLAIM_EVENTS
    marks = [colour.mark for colour in CLAIM_COLOURS.values()]
    outcome_marks = {colour.mark for colour in OUTCOME_COLOURS.values()}
    assert len(set(marks)) == len(marks) and not set(marks) & outcome_marks  # told apart without colour
    args = build_parser().parse_args(["journal", "claims", "--event", CLAIM_EVENTS[-1]])
    assert args.event == CLAIM_EVENTS[-1]
