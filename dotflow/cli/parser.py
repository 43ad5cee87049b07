"""The argument parser of the `dotflow` command (argparse); each sub-command sets `run`.

One vocabulary: the journal is `--journal URL` on every command (default `$DOTFLOW_JOURNAL_URL`;
`--url` is kept as another name for it), a workflow id is `--workflow-id`, a run is `--run`.
`start` keeps dotflow 1.0.1's flags (`-s/--step`, `-w/--workflow`, `-c`, `-i`, `-o`, `-p`, `-m`,
`--resume`). A usage error is one line (`CommandError`), not argparse's usage block.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, NoReturn

from dotflow.settings import Settings
from uow.outcomes import CLAIM_EVENTS, JOURNAL_OUTCOMES

__all__ = ["JOURNAL_URL_VARIABLE", "MODES", "STORAGES", "build_parser"]

MODES = ("sequential", "background", "sequential_group", "parallel")
STORAGES = ("default", "file", "batch", "s3", "gcs", "sql")
JOURNAL_URL_VARIABLE = "DOTFLOW_JOURNAL_URL"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error raised as one `CommandError` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        from dotflow.cli import CommandError

        raise CommandError(f"{self.prog}: {message}", 2)


class _Once(argparse.Action):
    """An option that may be given once: a second `--step` is an error, not "the last one wins"."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, "given more than once (a run takes one)")
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    from dotflow.cli import journal_commands, more_commands, start

    from dotflow import __version__

    parser = _Parser(prog="dotflow", description="Run workflows and audit their journal.")
    parser.add_argument(
        "-v", "--version", action="version", version=f"dotflow=={__version__}", help="print the version and exit"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("start", help="run a step or a workflow factory")
    entry = run.add_mutually_exclusive_group(required=True)
    entry.add_argument("-s", "--step", action=_Once, help="a step: package.module:name or path/to/file.py:name")
    entry.add_argument("-w", "--workflow", action=_Once, help="a function returning a DotFlow (same forms)")
    run.add_argument("-c", "--callback", action=_Once, help="import path of the task callback")
    run.add_argument("-i", "--initial-context", action=_Once, help="the step's initial context (a string)")
    _storage_options(run)
    run.add_argument("-m", "--mode", default="sequential", choices=MODES)
    run.add_argument("--resume", action="store_true", help="skip tasks an earlier run committed")
    run.add_argument("--no-verify-resume", dest="verify_resume", action="store_false",
                     help="restore checkpoints without comparing them with the journal's checksums")  # fmt: skip
    run.add_argument("--workflow-id", action=_Once, help="a fixed workflow id (name or UUID), so a later run can resume")
    _journal_option(run, "record every unit of work in this journal")
    run.add_argument("-q", "--quiet", action="store_true", help="print the summary line only (and errors)")
    run.add_argument("--claim", choices=("task", "workflow"),
                     help="take a lease on each task (or the workflow) first, so that workers resuming one "
                          "workflow run each step once (needs --resume)")  # fmt: skip
    run.add_argument("--claim-ttl", type=float, metavar="SECONDS", help="seconds a claim lives unless renewed (default 30)")
    _json_option(run)
    run.set_defaults(run=start.run)

    cron = commands.add_parser("schedule", help="run a step on a cron schedule until SIGINT or SIGTERM")
    cron.add_argument("-s", "--step", required=True, action=_Once, help="import path of a step (package.module:step)")
    cron.add_argument("--cron", required=True, help="cron expression, e.g. '*/5 * * * *' (local time)")
    cron.add_argument("-c", "--callback", help="import path of the task callback")
    cron.add_argument("-i", "--initial-context", help="the step's initial context (a string)")
    _storage_options(cron)
    cron.add_argument("-m", "--mode", default="sequential", choices=MODES)
    cron.add_argument("--resume", action="store_true", help="skip tasks an earlier run committed")
    cron.add_argument("--overlap", default="skip", choices=("skip", "queue", "parallel"),
                      help="when a run is due while the previous one still runs")  # fmt: skip
    cron.add_argument("--workflow-id", help="a fixed workflow id (name or UUID), so runs can resume")
    _journal_option(cron, "record every unit of work in this journal")
    cron.set_defaults(run=more_commands.schedule)

    logs = commands.add_parser("logs", help="print the log file LogDefault(output='file') writes")
    logs.add_argument("--path", default=str(Settings.LOG_PATH), help="the log file (default: %(default)s)")
    logs.set_defaults(run=more_commands.logs)

    init = commands.add_parser("init", help="create a project from the template shipped in the package")
    init.add_argument("name", metavar="NAME", help="project name (also the folder, and the workflow id)")
    init.add_argument("--directory", help="create it here instead of ./NAME")
    init.set_defaults(run=more_commands.init)

    for name in more_commands.NOT_SHIPPED:
        gone = commands.add_parser(name, help="dotflow 1.0.1's; not part of this project (see docs/compatibility.md)")
        gone.set_defaults(run=more_commands.not_shipped, command=name)

    journal = commands.add_parser("journal", help="inspect and audit the journal (needs the 'sql' extra)")
    sub = journal.add_subparsers(title="journal commands", metavar="COMMAND")

    runs = sub.add_parser("runs", help="runs of workflows, newest first")
    _journal_option(runs)
    _workflow_option(runs)
    _paging(runs)
    _json_option(runs)
    runs.set_defaults(run=journal_commands.list_runs)

    listing = sub.add_parser("list", help="units of work, newest first")
    _journal_option(listing)
    _workflow_option(listing)
    _run_option(listing)
    listing.add_argument("--task", help="only this task id")
    listing.add_argument("--outcome", choices=JOURNAL_OUTCOMES)
    listing.add_argument("--since", metavar="TIME", help="started at or after (ISO 8601, UTC if no offset)")
    listing.add_argument("--until", metavar="TIME", help="started before (ISO 8601)")
    _paging(listing)
    _json_option(listing)
    listing.set_defaults(run=journal_commands.list_units)

    show = sub.add_parser("show", help="one unit of work and its writes (or, with --run, one run)")
    show.add_argument("unit", metavar="UNIT", nargs="?", help="a unit id (or its start or end, as tables show it, if unique)")
    _journal_option(show)
    _run_option(show, "show this run and its units instead (an id, or its start or end if unique)")
    _json_option(show)
    show.set_defaults(run=journal_commands.show)

    prints = sub.add_parser("fingerprints", help="each workflow's current input fingerprint")
    _journal_option(prints)
    _json_option(prints)
    prints.set_defaults(run=journal_commands.fingerprints)

    verify = sub.add_parser("verify", help="compare every committed write with what the storage holds")
    _journal_option(verify)
    _storage_options(verify, path_default=None)
    _workflow_option(verify)
    _run_option(verify)
    _json_option(verify)
    verify.set_defaults(run=journal_commands.verify)

    claims = sub.add_parser("claims", help="what happened to claims (leases): taken, renewed late, expired, ...")
    _journal_option(claims)
    _workflow_option(claims)
    _run_option(claims)
    claims.add_argument("--task", help="only this task id")
    claims.add_argument("--event", choices=CLAIM_EVENTS)
    _paging(claims)
    _json_option(claims)
    claims.set_defaults(run=journal_commands.list_claims)

    upgrade = sub.add_parser("upgrade", help="run the schema migrations up to the current revision")
    _journal_option(upgrade)
    upgrade.set_defaults(run=journal_commands.upgrade)

    timeline = sub.add_parser("timeline", help="a workflow's attempts over time, run by run, task by task")
    timeline.add_argument("workflow", metavar="WORKFLOW_ID", nargs="?", help="the workflow (or --workflow-id)")
    _journal_option(timeline)
    _workflow_option(timeline, dest="workflow_option")
    _run_option(timeline)
    timeline.add_argument("--html", metavar="FILE", help="write a self-contained HTML page (inline SVG)")
    _json_option(timeline)
    timeline.set_defaults(run=journal_commands.timeline)
    return parser


def _storage_options(parser: argparse.ArgumentParser, path_default: str | None = str(Settings.START_PATH)) -> None:
    parser.add_argument("-o", "--storage", choices=STORAGES)
    parser.add_argument("-p", "--path", default=path_default, help="folder of StorageFile (file, batch)")
    parser.add_argument("--bucket", help="bucket of StorageS3 / StorageGCS")
    parser.add_argument("--prefix", help="key prefix inside the bucket")
    parser.add_argument("--region", help="region of StorageS3")
    parser.add_argument("--endpoint-url", help="endpoint of an S3-compatible server (StorageS3)")
    parser.add_argument("--project", help="project of StorageGCS")
    parser.add_argument("--storage-url", metavar="URL", help="database of StorageSQL")


def _journal_option(parser: argparse.ArgumentParser, what: str = "the journal's database URL") -> None:
    parser.add_argument(
        "--journal",
        "--url",
        dest="journal",
        metavar="URL",
        default=os.environ.get(JOURNAL_URL_VARIABLE) or None,
        help=f"{what} (default: ${JOURNAL_URL_VARIABLE})",
    )


def _workflow_option(parser: argparse.ArgumentParser, dest: str = "workflow_id") -> None:
    parser.add_argument("--workflow-id", "--workflow", dest=dest, metavar="ID", help="only this workflow")


def _run_option(parser: argparse.ArgumentParser, what: str = "only this run (an id, or its start or end if unique)") -> None:
    parser.add_argument("--run", dest="run_ref", metavar="RUN", help=what)


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    parser.add_argument("--offset", type=_not_negative, default=0, help="skip this many first (paging)")


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _not_negative(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
