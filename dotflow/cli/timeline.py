"""`dotflow journal timeline`: a workflow's attempts over time, run by run, one lane per task.

Each run gets its own section with its own time axis, from its first start to its last end: the
idle time between two runs is left out (a run 30 s after the previous one does not squeeze both
into the ends of one axis). Units recorded outside a run form a section of their own. Outcomes
are told apart by colour and by mark (`█` committed, `X` failed, `░` rolled back, ...), in the
legend too. What happened to the task's claim (its lease) is marked on the same lane, under its
attempts (events closer than a column apart are moved right, so each keeps its mark), each event
with a mark of its own (`[` taken, `]` released, `~` renewed late, `!` the
previous owner's lease found expired, `»` taken over, `×` lost); a claim on the whole workflow has
a lane of its own, "(workflow claim)". The HTML view is one self-contained page (inline SVG, no
script, no external file) with a tooltip per unit and per claim event; every user text in it is
escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from dotflow.cli.output import CLAIM_COLOURS, OUTCOME_COLOURS, claim_colour, duration, outcome_colour, short, text
from uow.outcomes import (
    CLAIM_EXPIRED,
    CLAIM_LOST,
    CLAIM_RELEASED,
    CLAIM_RENEWED_LATE,
    CLAIM_TAKEN,
    CLAIM_TAKEN_OVER,
    CONFLICT,
    FAILED,
    PREPARED,
    ROLLED_BACK,
)

__all__ = ["BAR_WIDTH", "WORKFLOW_LANE", "by_run", "render_html", "render_terminal"]

BAR_WIDTH = 60
WORKFLOW_LANE = "(workflow claim)"  # the lane of a claim on the whole workflow (task id NULL)
_HATCH = {FAILED: "hatch-failed", ROLLED_BACK: "hatch-rolled", CONFLICT: "hatch-conflict", PREPARED: "hatch-prepared"}
# When claim events pile up in the terminal lane's last column, the one shown (the rarer, the more telling).
_PRIORITY = {CLAIM_TAKEN: 0, CLAIM_RELEASED: 1, CLAIM_RENEWED_LATE: 2, CLAIM_TAKEN_OVER: 3, CLAIM_EXPIRED: 4, CLAIM_LOST: 5}


@dataclass
class _Lane:
    units: list[Any] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)


def by_run(units: Sequence[Any], claims: Sequence[Any] = ()) -> list[tuple[str | None, list[Any], list[Any]]]:
    """Units and claim events grouped by run, runs in the order they started (those outside a run last)."""
    groups: dict[str | None, tuple[list[Any], list[Any]]] = {}
    for unit in units:
        groups.setdefault(unit.run_id, ([], []))[0].append(unit)
    for claim in claims:
        groups.setdefault(claim.run_id, ([], []))[1].append(claim)
    ordered = sorted((k for k in groups if k is not None), key=lambda k: _extent(*groups[k])[0])
    keys = ordered + ([None] if None in groups else [])
    return [(k, groups[k][0], groups[k][1]) for k in keys]


def render_terminal(console: Any, workflow: str, units: Sequence[Any], runs: Mapping[str, Any] | None = None,
                    claims: Sequence[Any] = ()) -> None:  # fmt: skip
    from rich.table import Table
    from rich.text import Text

    runs = runs or {}
    sections = by_run(units, claims)
    counted = f"{len(units)} unit(s)" + (f" and {len(claims)} claim event(s)" if claims else "")
    console.print(text(f"workflow {workflow}: {counted} in {len(sections)} run(s)"))
    for run_id, run_units, run_claims in sections:
        start, span = _extent(run_units, run_claims)
        title = _run_title(run_id, runs.get(run_id) if run_id else None, run_units, run_claims, start, span)
        table = Table(title=title, title_justify="left")
        table.add_column(text("task"))
        table.add_column(text("attempts"))
        table.add_column(text(f"{duration(span)} across"), no_wrap=True)
        for task, lane in _lanes(run_units, run_claims):
            attempts = Text()
            bar = [(" ", "")] * BAR_WIDTH
            for unit in lane.units:
                colour = outcome_colour(unit.outcome)
                attempts.append(f"{unit.attempt or '?'}:{unit.outcome} ", style=colour.terminal)
                first, last = _columns(unit.started_at, unit.finished_at, start, span)
                for column in range(first, last + 1):
                    bar[column] = (colour.mark, colour.terminal)
            line = Text()
            if lane.units:
                for char, style in bar:
                    line.append(char, style=style)
            if lane.claims:
                if lane.units:
                    line.append("\n")
                    attempts.append("\n")
                attempts.append("claim: " + " ".join(_claim_summary(lane.claims)))
                line.append_text(_claim_line(lane.claims, start, span))
            table.add_row(text(task), attempts, line)
        console.print(table)
    legend = Text("legend: ")
    for outcome, colour in OUTCOME_COLOURS.items():
        legend.append(f"{colour.mark} {outcome}  ", style=colour.terminal)
    console.print(legend)
    if claims:
        claim_legend = Text("claims: ")
        for event, colour in CLAIM_COLOURS.items():
            claim_legend.append(f"{colour.mark} {event}  ", style=colour.terminal)
        console.print(claim_legend)


def _claim_line(claims: Sequence[Any], start: datetime, span: float) -> Any:
    """The claim events of one lane, one mark each at its time, in time order. Events closer than a
    column (a lease taken and released within a few ms) are moved right to the next free column; at
    the lane's end, the most telling one (`_PRIORITY`) keeps the last column."""
    from rich.text import Text

    shown: dict[int, Any] = {}
    for claim in claims:
        column = _columns(claim.at, None, start, span)[0]
        while column in shown and column < BAR_WIDTH - 1:
            column += 1
        there = shown.get(column)
        if there is None or _PRIORITY.get(claim.event, 9) >= _PRIORITY.get(there.event, 9):
            shown[column] = claim
    line = Text()
    for column in range(BAR_WIDTH):
        claim = shown.get(column)
        if claim is None:
            line.append(" ")
        else:
            colour = claim_colour(claim.event)
            line.append(colour.mark, style=colour.terminal)
    return line


def _claim_summary(claims: Sequence[Any]) -> list[str]:
    """Each event of a lane as `<mark><epoch>` in time order: `[1 ]1`, `!1 »2 ]2`."""
    return [f"{claim_colour(claim.event).mark}{claim.epoch}" for claim in claims]


def _run_title(run_id: str | None, run: Any, units: Sequence[Any], claims: Sequence[Any], start: datetime,
               span: float) -> Any:  # fmt: skip
    counted = f"{len(units)} unit(s)" + (f", {len(claims)} claim event(s)" if claims else "")
    if run_id is None:
        return text(f"{counted} outside a run, from {start:%Y-%m-%d %H:%M:%S} UTC")
    status = "" if run is None else f", {run.status}" + (f", {run.mode}" if run.mode else "")
    return text(f"run {short(run_id)}{status}: {counted} from {start:%Y-%m-%d %H:%M:%S} UTC, {duration(span)}")


def render_html(workflow: str, units: Sequence[Any], runs: Mapping[str, Any] | None = None,
                claims: Sequence[Any] = ()) -> str:  # fmt: skip
    runs = runs or {}
    sections = by_run(units, claims)
    label_width, plot_width, top = 220, 760, 40
    width = label_width + plot_width + 20
    body: list[str] = []
    for run_id, run_units, run_claims in sections:
        start, span = _extent(run_units, run_claims)
        lanes = _lanes(run_units, run_claims)
        row_height = 46 if run_claims else 30  # room for the claim marks under the bars
        height = top + row_height * len(lanes) + 10
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
        for index, (task, lane) in enumerate(lanes):
            y = top + index * row_height
            parts.append(f'<text x="{label_width - 10}" y="{y + 19}" text-anchor="end">{escape(task)}</text>')
            parts.append(f'<line x1="{label_width}" y1="{y + 14}" x2="{label_width + plot_width}" y2="{y + 14}" class="lane"/>')
            for unit in lane.units:
                x0 = label_width + _offset(unit.started_at, start, span) * plot_width
                x1 = label_width + _offset(unit.finished_at or unit.started_at, start, span) * plot_width
                tip = (
                    f"task {task}, attempt {unit.attempt}: {unit.outcome}\n"
                    f"{_stamp(unit.started_at)} → {_stamp(unit.finished_at) if unit.finished_at else '(not finished)'}\n"
                    f"unit {unit.id}" + (f"\n{unit.error}" if unit.error else "")
                )
                parts.append(_bar(x0, y + 4, max(x1 - x0, 3), unit.outcome, tip))
            for claim in lane.claims:
                x = label_width + _offset(claim.at, start, span) * plot_width
                parts.append(_claim_mark(x, y + 40, claim.event, _claim_tip(task, claim)))
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
    if claims:
        legend.append('<svg xmlns="http://www.w3.org/2000/svg" width="900" height="30" role="img" aria-label="claims legend">')
        x = 6
        for event in CLAIM_COLOURS:
            legend.append(_claim_mark(x, 21, event, event))
            legend.append(f'<text x="{x + 14}" y="20">{escape(event)}</text>')
            x += 140
        legend.append("</svg>")
    counts = ", ".join(f"{n} {o}" for o, n in _counts(units).items())
    claimed = f" and {len(claims)} claim event(s)" if claims else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>dotflow timeline: {escape(workflow)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}h2{font-size:1.05em;margin:1.4em 0 .3em}"
        "svg text{font-size:13px;fill:#222}svg text.axis{fill:#666}svg text.claim{font-size:15px;font-weight:bold}"
        ".lane{stroke:#e4e4e4}p{color:#555}</style></head><body>"
        f"<h1>Workflow {escape(workflow)}</h1>"
        f"<p>{len(units)} unit(s) of work{claimed} in {len(sections)} run(s): {escape(counts)}. Each run has its own "
        "time axis (the idle time between runs is left out). Hover a bar for its attempt, times and error, a claim "
        "mark for its owner and epoch.</p>"
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


def _claim_mark(x: float, baseline: float, event: str, tip: str) -> str:
    """A claim event: its mark (the terminal's), in its colour, with a tooltip."""
    colour = claim_colour(event)
    return (f'<text x="{x:.1f}" y="{baseline}" text-anchor="middle" class="claim" style="fill:{colour.html}" '
            f'data-claim="{escape(event)}">{escape(colour.mark)}<title>{escape(tip)}</title></text>')  # fmt: skip


def _claim_tip(task: str, claim: Any) -> str:
    lines = [f"{task}: claim {claim.event}, epoch {claim.epoch}", f"owner {claim.owner}", _stamp(claim.at)]
    if claim.previous_owner:
        lines.append(f"previous owner {claim.previous_owner}")
    if claim.late is not None:
        lines.append(f"{claim.late:.1f} s late")
    return "\n".join(lines)


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


def _lanes(units: Sequence[Any], claims: Sequence[Any] = ()) -> list[tuple[str, _Lane]]:
    """One lane per task (in the order each first appears), a workflow's claim first."""
    lanes: dict[str, _Lane] = {}
    if any(claim.task_id is None for claim in claims):
        lanes[WORKFLOW_LANE] = _Lane()
    events = sorted([(u.started_at, 0, u) for u in units] + [(c.at, 1, c) for c in claims], key=lambda e: e[:2])
    for _, kind, item in events:
        if kind == 0:
            lanes.setdefault(str(item.task_id), _Lane()).units.append(item)
        else:
            name = WORKFLOW_LANE if item.task_id is None else str(item.task_id)
            lanes.setdefault(name, _Lane()).claims.append(item)
    return list(lanes.items())


def _extent(units: Sequence[Any], claims: Sequence[Any] = ()) -> tuple[datetime, float]:
    moments = [u.started_at for u in units] + [c.at for c in claims]
    start = min(moments)
    end = max([u.finished_at or u.started_at for u in units] + [c.at for c in claims])
    return start, max((end - start).total_seconds(), 1e-6)


def _offset(moment: datetime, start: datetime, span: float) -> float:
    return min(max((moment - start).total_seconds() / span, 0.0), 1.0)


def _columns(started: datetime, finished: datetime | None, start: datetime, span: float) -> tuple[int, int]:
    first = int(_offset(started, start, span) * (BAR_WIDTH - 1))
    last = int(_offset(finished or started, start, span) * (BAR_WIDTH - 1))
    return first, max(first, last)


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _counts(units: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.outcome] = counts.get(unit.outcome, 0) + 1
    return counts
