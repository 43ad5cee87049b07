"""`dotflow journal timeline`: a workflow's attempts over time, one row per task, coloured by outcome.

The terminal view draws each unit as a coloured run of blocks on a shared time axis; the HTML view
is one self-contained page (inline SVG, no script, no external file) with a tooltip per unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from dotflow.cli.output import OUTCOME_COLOURS, outcome_colour, outcome_style

__all__ = ["render_html", "render_terminal"]

BAR_WIDTH = 60


def render_terminal(console: Any, workflow: str, units: Sequence[Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    start, span = _extent(units)
    table = Table(title=f"workflow {workflow}: {len(units)} unit(s) from {start:%Y-%m-%d %H:%M:%S} UTC",
                  title_justify="left")
    table.add_column("task")
    table.add_column("attempts")
    table.add_column(f"time ({span:.3f} s across)", no_wrap=True)
    for task, task_units in _by_task(units):
        attempts = Text()
        bar = [(" ", "")] * BAR_WIDTH
        for unit in task_units:
            style = outcome_style(unit.outcome)
            attempts.append(f"{unit.attempt or '?'}:{unit.outcome} ", style=style)
            first, last = _columns(unit, start, span)
            for column in range(first, last + 1):
                bar[column] = ("█", style)
        line = Text()
        for char, style in bar:
            line.append(char, style=style)
        table.add_row(task, attempts, line)
    console.print(table)
    legend = Text("legend: ")
    for outcome, colour in OUTCOME_COLOURS.items():
        legend.append(f"■ {outcome}  ", style=colour.terminal)
    console.print(legend)


def render_html(workflow: str, units: Sequence[Any]) -> str:
    start, span = _extent(units)
    rows = _by_task(units)
    label_width, plot_width, row_height, top = 220, 760, 30, 40
    height = top + row_height * len(rows) + 50
    width = label_width + plot_width + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of workflow {escape(workflow)}">',
        f'<text x="{label_width}" y="20" class="axis">{escape(_stamp(start))} UTC</text>',
        f'<text x="{label_width + plot_width}" y="20" class="axis" text-anchor="end">+{span:.3f} s</text>',
    ]
    for index, (task, task_units) in enumerate(rows):
        y = top + index * row_height
        parts.append(f'<text x="{label_width - 10}" y="{y + 19}" text-anchor="end">{escape(task)}</text>')
        parts.append(f'<line x1="{label_width}" y1="{y + 14}" x2="{label_width + plot_width}" y2="{y + 14}" class="lane"/>')
        for unit in task_units:
            x0 = label_width + _offset(unit.started_at, start, span) * plot_width
            x1 = label_width + _offset(unit.finished_at or unit.started_at, start, span) * plot_width
            colour = outcome_colour(unit.outcome).html
            tip = (
                f"task {task}, attempt {unit.attempt}: {unit.outcome}\n"
                f"{_stamp(unit.started_at)} → {_stamp(unit.finished_at) if unit.finished_at else '(not finished)'}\n"
                f"unit {unit.id}" + (f"\n{unit.error}" if unit.error else "")
            )
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 3):.1f}" height="20" rx="3" '
                f'fill="{colour}" data-outcome="{escape(unit.outcome)}"><title>{escape(tip)}</title></rect>'
            )
    legend_y = top + row_height * len(rows) + 25
    x = label_width
    for outcome, colours in OUTCOME_COLOURS.items():
        parts.append(f'<rect x="{x}" y="{legend_y - 11}" width="12" height="12" fill="{colours.html}"/>')
        parts.append(f'<text x="{x + 18}" y="{legend_y}">{outcome}</text>')
        x += 130
    parts.append("</svg>")
    counts = ", ".join(f"{n} {o}" for o, n in _counts(units).items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>dotflow timeline: {escape(workflow)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "svg text{font-size:13px;fill:#222}svg text.axis{fill:#666}.lane{stroke:#e4e4e4}"
        "p{color:#555}</style></head><body>"
        f"<h1>Workflow {escape(workflow)}</h1>"
        f"<p>{len(units)} unit(s) of work, {len(rows)} task(s): {escape(counts)}. "
        "Hover a bar for its attempt, times and error.</p>"
        + "".join(parts)
        + "</body></html>\n"
    )


def _by_task(units: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    tasks: dict[str, list[Any]] = {}
    for unit in units:
        tasks.setdefault(str(unit.task_id), []).append(unit)
    return list(tasks.items())


def _extent(units: Sequence[Any]) -> tuple[datetime, float]:
    start = min(u.started_at for u in units)
    end = max(u.finished_at or u.started_at for u in units)
    return start, max((end - start).total_seconds(), 1e-6)


def _offset(moment: datetime, start: datetime, span: float) -> float:
    return min(max((moment - start).total_seconds() / span, 0.0), 1.0)


def _columns(unit: Any, start: datetime, span: float) -> tuple[int, int]:
    first = int(_offset(unit.started_at, start, span) * (BAR_WIDTH - 1))
    last = int(_offset(unit.finished_at or unit.started_at, start, span) * (BAR_WIDTH - 1))
    return first, max(first, last)


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _counts(units: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.outcome] = counts.get(unit.outcome, 0) + 1
    return counts
