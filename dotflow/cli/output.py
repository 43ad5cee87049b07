"""Table or JSON, decided in one place for every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

__all__ = ["OUTCOME_STYLES", "console", "emit", "iso", "styled_outcome"]

OUTCOME_STYLES = {
    "committed": "green",
    "rolled_back": "yellow",
    "failed": "red",
    "conflict": "magenta",
    "prepared": "cyan",
}


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

    return Text(outcome, style=OUTCOME_STYLES.get(outcome, ""))


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
