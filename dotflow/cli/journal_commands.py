"""`dotflow journal list | show | fingerprints | verify | upgrade | timeline`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from uow import Persistence

from dotflow.cli import CommandError
from dotflow.cli.output import console, emit, iso, styled_outcome
from dotflow.cli.storages import build_storage

__all__ = ["fingerprints", "list_units", "show_unit", "timeline", "upgrade", "verify"]


def list_units(args: Any) -> int:
    with _open(args) as journal:
        units = journal.units(
            workflow_id=args.workflow,
            task_id=args.task,
            outcome=args.outcome,
            since=_time(args.since, "--since"),
            until=_time(args.until, "--until"),
            limit=args.limit,
        )
    rows = [
        (u.id, u.workflow_id, u.task_id, u.attempt, styled_outcome(u.outcome), u.started_at, _seconds(u), u.error)
        for u in units
    ]
    emit(
        args,
        [_unit_data(u) for u in units],
        columns=("unit", "workflow", "task", "attempt", "outcome", "started (UTC)", "seconds", "error"),
        rows=rows,
        empty="no unit of work matches",
    )
    return 0


def show_unit(args: Any) -> int:
    with _open(args) as journal:
        unit = journal.unit(_resolve(journal, args.unit))
    assert unit is not None
    if args.json:
        emit(args, _unit_data(unit, with_writes=True))
        return 0
    facts = [
        ("unit", unit.id),
        ("workflow", unit.workflow_id),
        ("task", unit.task_id),
        ("attempt", unit.attempt),
        ("outcome", styled_outcome(unit.outcome)),
        ("started (UTC)", unit.started_at),
        ("finished (UTC)", unit.finished_at),
        ("error", unit.error),
    ]
    emit(args, None, columns=("", ""), rows=facts)
    emit(
        args,
        None,
        columns=("key", "operation", "fingerprint", "sha256", "bytes"),
        rows=[(w.key, w.operation, w.fingerprint, w.checksum, w.size) for w in unit.writes],
        empty="no key written or deleted",
    )
    return 0


def fingerprints(args: Any) -> int:
    with _open(args) as journal:
        found = journal.fingerprints()
    emit(
        args,
        [{"workflow_id": w, "fingerprint": f, "updated_at": iso(t)} for w, f, t in found],
        columns=("workflow", "input fingerprint", "updated (UTC)"),
        rows=found,
        empty="no workflow fingerprint recorded",
    )
    return 0


def verify(args: Any) -> int:
    from uow.outcomes import PROBLEMS, UNCONFIRMED

    storage = build_storage(args, read_only=True)  # an audit deletes and writes nothing
    prefix = f"{args.workflow}-" if args.workflow else ""
    with _open(args) as journal:
        findings = journal.verify(storage, prefix=prefix)
    Persistence(storage).close()
    problems = [f for f in findings if f.status in PROBLEMS]
    unconfirmed = [f for f in findings if f.status == UNCONFIRMED]
    shown = [f for f in findings if f.status in PROBLEMS or f.status == UNCONFIRMED]
    emit(
        args,
        {
            "checked": len(findings),
            "problems": len(problems),
            UNCONFIRMED: len(unconfirmed),  # (the JSON field is named after the status)
            "findings": [f.__dict__ for f in findings],
        },
        columns=("key", "status", "unit", "detail"),
        rows=[(f.key, f.status, f.unit_id, f.detail) for f in shown],
        title="keys that are not backed by a committed journal entry",
        empty=f"all {len(findings)} key(s) are backed by committed journal entries",
    )
    if not args.json and shown:
        console().print(
            f"{len(findings)} key(s) checked: {len(problems)} problem(s) (missing, changed or unbacked), "
            f"{len(unconfirmed)} unconfirmed (written in the crash window of a commit)"
        )
    return 1 if problems else 0


def upgrade(args: Any) -> int:
    from uow.journal_migrate import current_revision, head_revision
    from uow.journal_migrate import upgrade as run_upgrade
    from uow.sql_engine import make_engine

    engine = make_engine(_url(args))
    try:
        before = current_revision(engine)
        run_upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    state = "already at" if before == after else f"upgraded from {before or 'an empty database'} to"
    console().print(f"{url}: {state} revision {after} (head: {head_revision()})")
    return 0


def timeline(args: Any) -> int:
    from dotflow.cli.timeline import render_html, render_terminal

    with _open(args) as journal:
        units = journal.units(workflow_id=args.workflow, oldest_first=True)
    if not units:
        raise CommandError(f"no unit of work recorded for workflow {args.workflow!r}")
    if args.html:
        with open(args.html, "w", encoding="utf-8") as page:
            page.write(render_html(args.workflow, units))
    if args.json:
        emit(args, [_unit_data(u) for u in units])
    else:
        render_terminal(console(), args.workflow, units)
        if args.html:
            console().print(f"wrote {args.html}")
    return 0


# -- helpers ---------------------------------------------------------------------------------------


def _url(args: Any) -> str:
    if not args.url:
        raise CommandError("no journal URL: pass --url or set DOTFLOW_JOURNAL_URL", 2)
    return str(args.url)


@contextmanager
def _open(args: Any) -> Iterator[Any]:
    """The journal at --url, closed afterwards; a read command never creates a missing SQLite file."""
    from sqlalchemy.engine import make_url

    from dotflow.run.journal_config import checkpoint_bytes
    from uow.journal import Journal
    from uow.sql_engine import mask_url

    url = _url(args)
    try:
        parsed = make_url(url)
    except Exception:
        raise CommandError(f"not a database URL: {mask_url(url)!r}", 2) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not os.path.exists(parsed.database):
            raise CommandError(f"no journal at {parsed.database!r} (the file does not exist)")
    journal = Journal(url, encode=checkpoint_bytes)
    try:
        yield journal
    finally:
        journal.close()


def _resolve(journal: Any, given: str) -> str:
    if journal.unit(given) is not None:
        return given
    matches = [u.id for u in journal.units(limit=None) if u.id.startswith(given)]
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        raise CommandError(f"no unit of work with id {given!r}")
    raise CommandError(f"{len(matches)} units start with {given!r}; give more of the id")


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: not an ISO 8601 time: {text!r}", 2) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _seconds(unit: Any) -> str | None:
    if unit.finished_at is None:
        return None
    return f"{(unit.finished_at - unit.started_at).total_seconds():.3f}"


def _unit_data(unit: Any, *, with_writes: bool = False) -> dict[str, Any]:
    data = {
        "id": unit.id,
        "workflow_id": unit.workflow_id,
        "task_id": unit.task_id,
        "attempt": unit.attempt,
        "outcome": unit.outcome,
        "started_at": iso(unit.started_at),
        "finished_at": iso(unit.finished_at),
        "error": unit.error,
    }
    if with_writes:
        data["writes"] = [w.__dict__ for w in unit.writes]
    return data
