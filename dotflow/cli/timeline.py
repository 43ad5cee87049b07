"""`dotflow journal timeline`: a workflow's attempts over time, run by run, one lane per task.

Each run gets its own section with its own time axis, from its first start to its last end: the
idle time between two runs is left out (a run 30 s after the previous one does not squeeze both
into the ends of one axis). Units recorded outside a run form a section of their own. Outcomes
are told apart by colour and by mark (`█` committed, `X` failed, `░` rolled back, ...), in the
legend too. The HTML view is one self-contained page (inline SVG, no script, no external file)
with a tooltip per unit; every user text in it is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from dotflow.cli.output import OUTCOME_COLOURS, duration, outcome_colour, short, text
from uow.outcomes import CONFLICT, FAILED, PREPARED, ROLLED_BACK

__all__ = ["BAR_WIDTH", "by_run", "render_html", "render_terminal"]

BAR_WIDTH = 60
_HATCH = {FAILED: "hatch-failed", ROLLED_BACK: "hatch-rolled", CONFLICT: "hatch-conflict", PREPARED: "hatch-prepared"}


def by_run(units: Sequence[Any]) -> list[tuple[str | None, list[Any]]]:
    """Units grouped by run, runs in the order they started (units outside a run last)."""
    groups: dict[str | None, list[Any]] = {}
    for unit in units:
        groups.setdefault(unit.run_id, []).append(unit)
    ordered = sorted((k for k in groups if k is not None), key=lambda k: min(u.started_at for u in groups[k]))
    return [(k, groups[k]) for k in ordered] + ([(None, groups[None])] if None in groups else [])


def render_terminal(console: Any, workflow: str, units: Sequence[Any], runs: Mapping[str, Any] | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    runs = runs or {}
    sections = by_run(units)
    console.print(text(f"workflow {workflow}: {len(units)} unit(s) in {len(sections)} run(s)"))
    for run_id, run_units in sections:
        start, span = _extent(run_units)
        table = Table(title=_run_title(run_id, runs.get(run_id) if run_id else None, run_units, start, span),
                      title_justify="left")  # fmt: skip
        table.add_column(text("task"))
        table.add_column(text("attempts"))
        table.add_column(text(f"{duration(span)} across"), no_wrap=True)
        for task, task_units in _by_task(run_units):
            attempts = Text()
            bar = [(" ", "")] * BAR_WIDTH
            for unit in task_units:
                colour = outcome_colour(unit.outcome)
                attempts.append(f"{unit.attempt or '?'}:{unit.outcome} ", style=colour.terminal)
                first, last = _columns(unit, start, span)
                for column in range(first, last + 1):
                    bar[column] = (colour.mark, colour.terminal)
            line = Text()
            for char, style in bar:
                line.append(char, style=style)
            table.add_row(text(task), attempts, line)
        console.print(table)
    legend = Text("legend: ")
    for outcome, colour in OUTCOME_COLOURS.items():
        legend.append(f"{colour.mark} {outcome}  ", style=colour.terminal)
    console.print(legend)


def _run_title(run_id: str | None, run: Any, units: Sequence[Any], start: datetime, span: float) -> Any:
    if run_id is None:
        return text(f"units outside a run, from {start:%Y-%m-%d %H:%M:%S} UTC")
    status = "" if run is None else f", {run.status}" + (f", {run.mode}" if run.mode else "")
    return text(f"run {short(run_id)}{status}: {len(units)} unit(s) from {start:%Y-%m-%d %H:%M:%S} UTC, {duration(span)}")


def render_html(workflow: str, units: Sequence[Any], runs: Mapping[str, Any] | None = None) -> str:
    runs = runs or {}
    sections = by_run(units)
    label_width, plot_width, row_height, top = 220, 760, 30, 40
    width = label_width + plot_width + 20
    body: list[str] = []
    for run_id, run_units in sections:
        start, span = _extent(run_units)
        rows = _by_task(run_units)
        height = top + row_height * len(rows) + 10
        heading = "Units outside a run" if run_id is None else f"Run {run_id}"
        run = runs.get(run_id) if run_id else None
        detail = "" if run is None else f" ({run.status}{', ' + run.mode if run.mode else ''})"
        body.append(f"<h2>{escape(heading + detail)}</h2>")
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(heading)}">',
            _patterns(),
            f'<text x="{label_width}" y="20" class="axis">{escape(_stamp(start))} UTC</text>',
            f'<text x="{label_width + plot_width}" y="20" class="axis" text-anchor="end">+{escape(duration(span))}</text>',
        ]
        for index, (task, task_units) in enumerate(rows):
            y = top + index * row_height
            parts.append(f'<text x="{label_width - 10}" y="{y + 19}" text-anchor="end">{escape(task)}</text>')
            parts.append(f'<line x1="{label_width}" y1="{y + 14}" x2="{label_width + plot_width}" y2="{y + 14}" class="lane"/>')
            for unit in task_units:
                x0 = label_width + _offset(unit.started_at, start, span) * plot_width
                x1 = label_width + _offset(unit.finished_at or unit.started_at, start, span) * plot_width
                tip = (
                    f"task {task}, attempt {unit.attempt}: {unit.outcome}\n"
                    f"{_stamp(unit.started_at)} → {_stamp(unit.finished_at) if unit.finished_at else '(not finished)'}\n"
                    f"unit {unit.id}" + (f"\n{unit.error}" if unit.error else "")
                )
                parts.append(_bar(x0, y + 4, max(x1 - x0, 3), unit.outcome, tip))
        parts.append("</svg>")
        body.append("".join(parts))
    legend = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="30" role="img" aria-label="legend">',
              _patterns()]  # fmt: skip
    x = 0
    for outcome in OUTCOME_COLOURS:
        legend.append(_bar(x, 8, 14, outcome, outcome, height=14))
        legend.append(f'<text x="{x + 20}" y="20">{escape(outcome)}</text>')
        x += 140
    legend.append("</svg>")
    counts = ", ".join(f"{n} {o}" for o, n in _counts(units).items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>dotflow timeline: {escape(workflow)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}h2{font-size:1.05em;margin:1.4em 0 .3em}"
        "svg text{font-size:13px;fill:#222}svg text.axis{fill:#666}.lane{stroke:#e4e4e4}"
        "p{color:#555}</style></head><body>"
        f"<h1>Workflow {escape(workflow)}</h1>"
        f"<p>{len(units)} unit(s) of work in {len(sections)} run(s): {escape(counts)}. Each run has its own time "
        "axis (the idle time between runs is left out). Hover a bar for its attempt, times and error.</p>"
        + "".join(legend)
        + "".join(body)
        + "</body></html>\n"
    )


def _bar(x: float, y: float, width: float, outcome: str, tip: str, height: int = 20) -> str:
    """A bar filled with the outcome's colour, and its hatching (outcomes differ without colour too)."""
    colour = outcome_colour(outcome).html
    bar = (f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}" rx="3" fill="{colour}" '
           f'data-outcome="{escape(outcome)}"><title>{escape(tip)}</title></rect>')  # fmt: skip
    hatch = _HATCH.get(outcome)
    if hatch is not None:
        bar += (f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}" rx="3" fill="url(#{hatch})" '
                f'pointer-events="none"/>')  # fmt: skip
    return bar


def _patterns() -> str:
    return (
        "<defs>"
        '<pattern id="hatch-failed" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<path d="M0,0 L6,6 M6,0 L0,6" stroke="#fff" stroke-width="1.2"/></pattern>'
        '<pattern id="hatch-rolled" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<path d="M0,6 L6,0" stroke="#fff" stroke-width="1.2"/></pattern>'
        '<pattern id="hatch-conflict" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<path d="M0,3 L6,3" stroke="#fff" stroke-width="1.2"/></pattern>'
        '<pattern id="hatch-prepared" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<circle cx="3" cy="3" r="1.2" fill="#fff"/></pattern>'
        "</defs>"
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
