"""Table or JSON, decided in one place for every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from uow.outcomes import COMMITTED, CONFLICT, FAILED, PREPARED, ROLLED_BACK

__all__ = ["OUTCOME_COLOURS", "OutcomeColour", "console", "emit", "iso", "outcome_colour", "outcome_style", "styled_outcome"]


class OutcomeColour(NamedTuple):
    terminal: str  # a rich style
    html: str  # a CSS colour


# The one colour map: every view of a journal outcome (tables, the timeline, its HTML page, `start`).
OUTCOME_COLOURS: dict[str, OutcomeColour] = {
    COMMITTED: OutcomeColour("green", "#2e9d4f"),
    ROLLED_BACK: OutcomeColour("yellow", "#d9a400"),
    FAILED: OutcomeColour("red", "#d33c3c"),
    CONFLICT: OutcomeColour("magenta", "#a347c2"),
    PREPARED: OutcomeColour("cyan", "#2aa1b3"),
}
_NO_COLOUR = OutcomeColour("", "#888888")


def outcome_colour(outcome: str) -> OutcomeColour:
    return OUTCOME_COLOURS.get(outcome, _NO_COLOUR)


def outcome_style(outcome: str) -> str:
    """The rich style of `outcome` ("" for a name the journal does not use)."""
    return outcome_colour(outcome).terminal


def console() -> Any:
    """A rich Console on the current stdout (wide enough for tables when it is not a terminal)."""
    try:
        from rich.console import Console
    except ModuleNotFoundError as exc:
        raise ImportError("the dotflow command needs rich: pip install 'dotflow-uow[sql]'") from exc
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)


def emit(
    args: Any,
    data: Any,
    *,
    columns: Sequence[str] = (),
    rows: Sequence[Sequence[Any]] = (),
    title: str | None = None,
    empty: str = "nothing found",
) -> None:
    """`data` as JSON with --json; else `rows` as a table under `columns`."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=_json_default))
        return
    out = console()
    if not rows:
        out.print(empty)
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    out.print(table)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def styled_outcome(outcome: str) -> Any:
    from rich.text import Text

    return Text(outcome, style=outcome_style(outcome))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, (str, int, float)):
        return str(value)
    return value  # a rich renderable


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
