"""Table or JSON, decided in one place for every command; user text is always shown as it is.

Every value that reaches a table (errors, keys, ids, workflow names, values) is put in a cell as a
rich `Text`, never parsed as markup: `[bold red]x`, `[/etc/app.ini]` and `rows[i]` print verbatim.
JSON names an id after what it identifies, in every command: `unit_id`, `run_id`, `task_id`,
`workflow_id`. Tables show ids by their last `SHORT_ID` characters (`--json` and `show` give them whole)
and durations as `45 ms`; outcomes are told apart by a mark as well as by colour.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from uow.outcomes import (
    CLAIM_EXPIRED,
    CLAIM_LOST,
    CLAIM_RELEASED,
    CLAIM_RENEWED_LATE,
    CLAIM_TAKEN,
    CLAIM_TAKEN_OVER,
    COMMITTED,
    CONFLICT,
    FAILED,
    PREPARED,
    ROLLED_BACK,
    RUN_COMPLETED,
    RUN_UNFINISHED,
)

__all__ = [
    "CLAIM_COLOURS",
    "OUTCOME_COLOURS",
    "SHORT_ID",
    "OutcomeColour",
    "console",
    "duration",
    "emit",
    "iso",
    "claim_colour",
    "outcome_colour",
    "outcome_style",
    "say",
    "short",
    "styled_outcome",
    "text",
]

SHORT_ID = 12  # characters of an id shown in tables


class OutcomeColour(NamedTuple):
    terminal: str  # a rich style
    html: str  # a CSS colour
    mark: str  # the timeline's block for it: outcomes differ without colour too


# The one colour map: every view of a journal outcome (tables, the timeline, its HTML page, `start`).
OUTCOME_COLOURS: dict[str, OutcomeColour] = {
    COMMITTED: OutcomeColour("green", "#2e9d4f", "█"),
    ROLLED_BACK: OutcomeColour("yellow", "#d9a400", "░"),
    FAILED: OutcomeColour("red", "#d33c3c", "X"),
    CONFLICT: OutcomeColour("magenta", "#a347c2", "≠"),
    PREPARED: OutcomeColour("cyan", "#2aa1b3", "?"),
}
_NO_COLOUR = OutcomeColour("", "#888888", "·")

# What happened to a claim, as the timeline marks it on the task's lane (a mark of its own each, so
# they differ without colour too; none is an outcome's mark). "[" and "]" bracket the time a lease was held.
CLAIM_COLOURS: dict[str, OutcomeColour] = {
    CLAIM_TAKEN: OutcomeColour("blue", "#3a6fd8", "["),
    CLAIM_RENEWED_LATE: OutcomeColour("yellow", "#c98a00", "~"),
    CLAIM_EXPIRED: OutcomeColour("red", "#d33c3c", "!"),
    CLAIM_TAKEN_OVER: OutcomeColour("magenta", "#a347c2", "»"),
    CLAIM_RELEASED: OutcomeColour("blue", "#3a6fd8", "]"),
    CLAIM_LOST: OutcomeColour("red", "#d33c3c", "×"),
}
_RUN_STYLES = {RUN_COMPLETED: "green", FAILED: "red", RUN_UNFINISHED: "cyan"}


def outcome_colour(outcome: str) -> OutcomeColour:
    return OUTCOME_COLOURS.get(outcome, _NO_COLOUR)


def claim_colour(event: str) -> OutcomeColour:
    return CLAIM_COLOURS.get(event, _NO_COLOUR)


def outcome_style(outcome: str) -> str:
    """The rich style of `outcome` ("" for a name the journal does not use)."""
    return outcome_colour(outcome).terminal


def console(stream: Any = None) -> Any:
    """A rich Console on stdout (or `stream`), wide enough for tables when it is not a terminal."""
    from rich.console import Console

    out = sys.stdout if stream is None else stream
    return Console(file=out, width=None if out.isatty() else 200, highlight=False, emoji=False, markup=False)


def text(value: Any, style: str = "") -> Any:
    """`value` as a rich Text shown verbatim (never read as markup)."""
    from rich.text import Text

    return Text("" if value is None else str(value), style=style)


def say(message: str, stream: Any = None) -> None:
    """Print one plain line (user text in it is shown as it is)."""
    console(stream).print(text(message), soft_wrap=True)


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
    if not rows:
        say(empty)
        return
    from rich.table import Table

    table = Table(title=None if title is None else text(title), title_justify="left", show_header=any(columns))
    for column in columns:
        table.add_column(text(column), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console().print(table)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def styled_outcome(outcome: str) -> Any:
    return text(outcome, outcome_style(outcome))


def styled_run_status(status: str) -> Any:
    return text(status, _RUN_STYLES.get(status, ""))


def short(identifier: Any) -> str:
    """An id as tables show it: its last SHORT_ID characters. Unit ids start with their time
    (`uow.ids`), so their ends tell them apart; commands take an id's start or end."""
    value = "" if identifier is None else str(identifier)
    return value if len(value) <= SHORT_ID else value[-SHORT_ID:]


def duration(seconds: float | None) -> str:
    """`45 ms`, `1.2 s`, `3 min 4 s`, `2 h 5 min` (empty for None)."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1000:.2f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _cell(value: Any) -> Any:
    if value is None:
        return text("")
    if isinstance(value, datetime):
        return text(value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    if isinstance(value, (str, int, float)):
        return text(value)
    return value  # already a rich renderable (a styled Text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
