"""`dotflow journal runs | list | show | claims | fingerprints | verify | upgrade | timeline`.

Every command but `upgrade` only reads: the journal is opened read-only (`Journal(read_only=True)`:
nothing is created, no table, no file, not even SQLite's journal mode is changed), and `verify`
opens its storage read-only too. A journal that does not exist, a workflow id or a run the journal
never recorded, are errors (exit 2), never an empty answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from dotflow.cli import CommandError
from dotflow.cli.output import (
    claim_colour,
    duration,
    emit,
    iso,
    say,
    short,
    text,
    styled_outcome,
    styled_run_status,
)
from dotflow.cli.parser import JOURNAL_URL_VARIABLE
from dotflow.cli.storages import build_storage, describe, options_from_description
from uow.outcomes import TASK_COUNTS

__all__ = ["fingerprints", "list_claims", "list_runs", "list_units", "show", "timeline", "upgrade", "verify"]


def list_runs(args: Any) -> int:
    with _open(args) as journal:
        _require_workflow(journal, args.workflow_id)
        total = journal.count_runs(workflow_id=args.workflow_id)
        runs = journal.runs(workflow_id=args.workflow_id, limit=args.limit, offset=args.offset)
    rows = [
        (short(r.id), r.workflow_id, r.mode, styled_run_status(r.status), r.started_at, duration(r.seconds),
         _count(r.completed), _count(r.restored), _count(r.failed), _count(r.adopted),
         f"{r.host or '?'}:{r.pid or '?'}", describe(r.storage))
        for r in runs
    ]  # fmt: skip
    emit(
        args,
        [_run_data(r) for r in runs],
        columns=("run", "workflow", "mode", "status", "started (UTC)", "took", *TASK_COUNTS, "host:pid", "storage"),
        rows=rows,
        empty="no run recorded" + ("" if args.workflow_id is None else f" for workflow {args.workflow_id!r}"),
    )
    _paging_line(args, len(runs), total, "run")
    return 0


def list_units(args: Any) -> int:
    filters: dict[str, Any] = {
        "workflow_id": args.workflow_id,
        "task_id": args.task,
        "outcome": args.outcome,
        "since": _time(args.since, "--since"),
        "until": _time(args.until, "--until"),
    }
    with _open(args) as journal:
        _require_workflow(journal, args.workflow_id)
        filters["run_id"] = None if args.run_ref is None else _resolve_run(journal, args.run_ref)
        total = journal.count_units(**filters)
        units = journal.units(**filters, limit=args.limit, offset=args.offset)
    rows = [
        (short(u.id), short(u.run_id), u.workflow_id, u.task_id, u.attempt, styled_outcome(u.outcome), u.started_at,
         duration(_seconds(u)), u.error)
        for u in units
    ]  # fmt: skip
    emit(
        args,
        [_unit_data(u) for u in units],
        columns=("unit", "run", "workflow", "task", "attempt", "outcome", "started (UTC)", "took", "error"),
        rows=rows,
        empty="no unit of work matches",
    )
    _paging_line(args, len(units), total, "unit")
    return 0


def list_claims(args: Any) -> int:
    filters: dict[str, Any] = {"workflow_id": args.workflow_id, "task_id": args.task, "event": args.event}
    with _open(args) as journal:
        _require_workflow(journal, args.workflow_id)
        filters["run_id"] = None if args.run_ref is None else _resolve_run(journal, args.run_ref)
        total = journal.count_claims(**filters)
        claims = journal.claims(**filters, limit=args.limit, offset=args.offset)
    emit(
        args,
        [_claim_data(c) for c in claims],
        columns=CLAIM_COLUMNS,
        rows=[_claim_row(c) for c in claims],
        empty="no claim event matches",
    )
    _paging_line(args, len(claims), total, "claim event")
    return 0


def show(args: Any) -> int:
    if (args.unit is None) == (args.run_ref is None):
        raise CommandError("show takes a unit id, or --run RUN (one of them)", 2)
    with _open(args) as journal:
        if args.run_ref is not None:
            run = journal.run(_resolve_run(journal, args.run_ref))
            assert run is not None
            units = journal.units(run_id=run.id, oldest_first=True)
            claims = journal.claims(run_id=run.id)
        else:
            unit = journal.unit(_resolve_unit(journal, args.unit))
            assert unit is not None
    if args.run_ref is not None:
        return _show_run(args, run, units, claims)
    if args.json:
        emit(args, _unit_data(unit, with_writes=True))
        return 0
    facts = [
        ("unit", unit.id),
        ("run", unit.run_id),
        ("workflow", unit.workflow_id),
        ("task", unit.task_id),
        ("attempt", unit.attempt),
        ("outcome", styled_outcome(unit.outcome)),
        ("started (UTC)", unit.started_at),
        ("finished (UTC)", unit.finished_at),
        ("took", duration(_seconds(unit))),
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


def _show_run(args: Any, run: Any, units: list[Any], claims: list[Any]) -> int:
    if args.json:
        emit(args, {**_run_data(run), "units": [_unit_data(u) for u in units], "claims": [_claim_data(c) for c in claims]})
        return 0
    facts = [
        ("run", run.id),
        ("workflow", run.workflow_id),
        ("mode", run.mode),
        ("status", styled_run_status(run.status)),
        ("started (UTC)", run.started_at),
        ("finished (UTC)", run.finished_at),
        ("took", duration(run.seconds)),
        ("tasks", f"{_count(run.completed)} completed, {_count(run.restored)} restored, {_count(run.failed)} failed, "
                  f"{_count(run.adopted)} adopted"),  # fmt: skip
        ("host:pid", f"{run.host}:{run.pid}"),
        ("storage", describe(run.storage)),
    ]
    emit(args, None, columns=("", ""), rows=facts)
    emit(
        args,
        None,
        columns=("unit", "task", "attempt", "outcome", "took", "error"),
        rows=[(short(u.id), u.task_id, u.attempt, styled_outcome(u.outcome), duration(_seconds(u)), u.error)
              for u in units],  # fmt: skip
        empty="no unit of work recorded for this run",
    )
    if claims:
        emit(args, None, columns=CLAIM_COLUMNS, rows=[_claim_row(c) for c in claims])
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
    from uow.persistence import Persistence

    with _open(args) as journal:
        _require_workflow(journal, args.workflow_id)
        run_id = None if args.run_ref is None else _resolve_run(journal, args.run_ref)
        if args.storage is None and args.path is not None:
            args.storage = "file"  # a folder named: StorageFile's (BatchStorage's is refused with a hint)
        elif args.storage is None and args.storage_url is not None:
            args.storage = "sql"
        if args.storage is None:
            _use_recorded_storage(args, journal, run_id)
        storage = build_storage(args, read_only=True)  # an audit creates, locks, deletes and writes nothing
        try:
            prefix = f"{args.workflow_id}-" if args.workflow_id else ""
            findings = journal.verify(storage, prefix=prefix, run_id=run_id)
        finally:
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
            "findings": [{"key": f.key, "status": f.status, "unit_id": f.unit_id, "detail": f.detail} for f in findings],
        },
        columns=("key", "status", "unit", "detail"),
        rows=[(f.key, f.status, short(f.unit_id), f.detail) for f in shown],
        title="keys that are not backed by a committed journal entry",
        empty=f"all {len(findings)} key(s) are backed by committed journal entries",
    )
    if not args.json and shown:
        say(
            f"{len(findings)} key(s) checked: {len(problems)} problem(s) (missing, changed or unbacked), "
            f"{len(unconfirmed)} unconfirmed (written in the crash window of a commit)"
        )
    return 1 if problems else 0


def upgrade(args: Any) -> int:
    from uow.journal_migrate import current_revision, head_revision, known_revisions, mismatch
    from uow.journal_migrate import upgrade as run_upgrade
    from uow.sql_engine import make_engine

    engine = make_engine(_url(args))
    try:
        before = current_revision(engine)
        if before is not None and before not in known_revisions():
            raise CommandError(mismatch(engine, before, head_revision()), 2)
        run_upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    state = "already at" if before == after else f"upgraded from {before or 'an empty database'} to"
    say(f"{url}: {state} revision {after} (head: {head_revision()})")
    return 0


def timeline(args: Any) -> int:
    from dotflow.cli.timeline import render_html, render_terminal

    workflow_id = args.workflow or args.workflow_option
    if args.workflow and args.workflow_option and args.workflow != args.workflow_option:
        raise CommandError("two different workflow ids given (WORKFLOW_ID and --workflow-id)", 2)
    if workflow_id is None and args.run_ref is None:
        raise CommandError("timeline needs a workflow id (--workflow-id ID) or a run (--run RUN)", 2)
    with _open(args) as journal:
        _require_workflow(journal, workflow_id)
        run_id = None if args.run_ref is None else _resolve_run(journal, args.run_ref)
        units = journal.units(workflow_id=workflow_id, run_id=run_id, oldest_first=True)
        claims = journal.claims(workflow_id=workflow_id, run_id=run_id)
        runs = {run.id: run for run in journal.runs(workflow_id=workflow_id)} if run_id is None else {
            run_id: journal.run(run_id)}  # fmt: skip
    if not units and not claims:
        what = f"run {run_id}" if run_id is not None else f"workflow {workflow_id!r}"
        raise CommandError(f"no unit of work recorded for {what}", 2)
    title = workflow_id if workflow_id is not None else str((units or claims)[0].workflow_id)
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as page:
                page.write(render_html(title, units, runs, claims))
        except OSError as error:
            raise CommandError(f"cannot write {args.html!r}: {error.strerror or error}", 2) from None
    if args.json:
        emit(args, [_unit_data(u) for u in units])
    else:
        from dotflow.cli.output import console

        render_terminal(console(), title, units, runs, claims)
        if args.html:
            say(f"wrote {args.html}")
    return 0


# -- helpers ---------------------------------------------------------------------------------------


def _url(args: Any) -> str:
    if not args.journal:
        raise CommandError(f"no journal: pass --journal URL or set {JOURNAL_URL_VARIABLE}", 2)
    return str(args.journal)


@contextmanager
def _open(args: Any) -> Iterator[Any]:
    """The journal at --journal, read-only (never created nor changed), closed afterwards."""
    from uow.sql_engine import import_sqlalchemy

    url = _url(args)
    import_sqlalchemy()  # the `sql` extra, or one line naming it
    from uow.errors import JournalError
    from uow.journal import Journal
    from uow.journal_migrate import SchemaError

    from dotflow.run.journal_config import checkpoint_bytes

    try:
        journal = Journal(url, encode=checkpoint_bytes, read_only=True)
    except (JournalError, SchemaError) as error:
        raise CommandError(str(error), 2) from None
    try:
        yield journal
    finally:
        journal.close()


def _require_workflow(journal: Any, workflow_id: str | None) -> None:
    if workflow_id is not None and not journal.knows_workflow(workflow_id):
        raise CommandError(f"the journal has no workflow {workflow_id!r} (no run or unit of it is recorded)", 2)


def _resolve_unit(journal: Any, given: str) -> str:
    return _resolve(given, journal.unit, journal.unit_ids, "no unit of work with id", "more than one unit id starts or ends with")


def _resolve_run(journal: Any, given: str) -> str:
    return _resolve(given, journal.run, journal.run_ids, "no run with id", "more than one run id starts or ends with")


def _resolve(given: str, exact: Any, by_prefix: Any, none: str, several: str) -> str:
    """The full id `given` names: itself if recorded, else the one id that starts or ends with it."""
    if exact(given) is not None:
        return given
    matches = by_prefix(given)
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        raise CommandError(f"{none} {given!r} in the journal", 2)
    raise CommandError(f"{several} {given!r}; give more of the id", 2)


def _use_recorded_storage(args: Any, journal: Any, run_id: str | None) -> None:
    """No --storage: take the storage recorded with the run (or with the workflow's runs, if they agree)."""
    if run_id is None and args.workflow_id is None:
        raise CommandError(
            "verify needs the storage: --storage and its options, or --run RUN / --workflow-id ID to use "
            "the storage recorded with the run", 2,
        )  # fmt: skip
    if run_id is not None:
        run = journal.run(run_id)
        options = options_from_description(run.storage, run.id)
    else:
        runs = journal.runs(workflow_id=args.workflow_id)
        described = {describe(r.storage): r for r in runs if r.storage}
        if not described:
            raise CommandError(f"no run of workflow {args.workflow_id!r} recorded its storage: name it (--storage)", 2)
        if len(described) > 1:
            raise CommandError(f"the runs of workflow {args.workflow_id!r} used {len(described)} storages "
                               f"({', '.join(sorted(described))}): name one (--storage) or pick a run (--run)", 2)  # fmt: skip
        [run] = described.values()
        options = options_from_description(run.storage, run.id)
    for name, value in options.items():
        setattr(args, name, value)


def _time(text_value: str | None, option: str) -> datetime | None:
    if text_value is None:
        return None
    try:
        moment = datetime.fromisoformat(text_value)
    except ValueError:
        raise CommandError(f"{option}: not an ISO 8601 time: {text_value!r}", 2) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _seconds(unit: Any) -> float | None:
    if unit.finished_at is None:
        return None
    return float((unit.finished_at - unit.started_at).total_seconds())


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def _paging_line(args: Any, shown: int, total: int, what: str) -> None:
    if args.json or total <= shown:
        return
    first = args.offset + 1 if shown else args.offset
    say(f"showing {first:,}-{args.offset + shown:,} of {total:,} {what}s (--limit, --offset for more)"
        if shown else f"no {what} at offset {args.offset:,} (there are {total:,})")  # fmt: skip


def _unit_data(unit: Any, *, with_writes: bool = False) -> dict[str, Any]:
    data = {
        "unit_id": unit.id,
        "run_id": unit.run_id,
        "workflow_id": unit.workflow_id,
        "task_id": unit.task_id,
        "attempt": unit.attempt,
        "outcome": unit.outcome,
        "started_at": iso(unit.started_at),
        "finished_at": iso(unit.finished_at),
        "seconds": _seconds(unit),
        "error": unit.error,
    }
    if with_writes:
        data["writes"] = [w.__dict__ for w in unit.writes]
    return data


CLAIM_COLUMNS = ("at (UTC)", "run", "task", "event", "owner", "epoch", "previous owner", "late", "key")


def _claim_row(claim: Any) -> tuple[Any, ...]:
    return (
        claim.at, short(claim.run_id), "(workflow)" if claim.task_id is None else claim.task_id,
        text(f"{claim_colour(claim.event).mark} {claim.event}", claim_colour(claim.event).terminal), claim.owner,
        claim.epoch, claim.previous_owner, "" if claim.late is None else f"{claim.late:.1f} s", claim.key,
    )  # fmt: skip


def _claim_data(claim: Any) -> dict[str, Any]:
    return {
        "run_id": claim.run_id,
        "workflow_id": claim.workflow_id,
        "task_id": claim.task_id,
        "key": claim.key,
        "event": claim.event,
        "owner": claim.owner,
        "epoch": claim.epoch,
        "at": iso(claim.at),
        "previous_owner": claim.previous_owner,
        "late_seconds": claim.late,
    }


def _run_data(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "mode": run.mode,
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "seconds": run.seconds,
        "tasks": dict(zip(TASK_COUNTS, (run.completed, run.restored, run.failed, run.adopted))),
        "host": run.host,
        "pid": run.pid,
        "storage": run.storage,
    }

