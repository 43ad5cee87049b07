"""The argument parser of the `dotflow` command (argparse); each sub-command sets `run`."""

from __future__ import annotations

import argparse
import os

from dotflow.settings import Settings
from uow.outcomes import JOURNAL_OUTCOMES

__all__ = ["MODES", "STORAGES", "build_parser"]

MODES = ("sequential", "background", "sequential_group", "parallel")
STORAGES = ("default", "file", "batch", "s3", "gcs", "sql")


def build_parser() -> argparse.ArgumentParser:
    from dotflow.cli import journal_commands, more_commands, start

    from dotflow import __version__

    parser = argparse.ArgumentParser(prog="dotflow", description="Run workflows and audit their journal.")
    parser.add_argument(
        "-v", "--version", action="version", version=f"dotflow=={__version__}", help="print the version and exit"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("start", help="run a step or a workflow factory")
    entry = run.add_mutually_exclusive_group(required=True)
    entry.add_argument("-s", "--step", help="import path of a step (package.module:step)")
    entry.add_argument("-w", "--workflow", help="import path of a function returning a DotFlow")
    run.add_argument("-c", "--callback", help="import path of the task callback")
    run.add_argument("-i", "--initial-context", help="the step's initial context (a string)")
    _storage_options(run)
    run.add_argument("-m", "--mode", default="sequential", choices=MODES)
    run.add_argument("--resume", action="store_true", help="skip tasks an earlier run committed")
    run.add_argument("--workflow-id", help="a fixed workflow id (name or UUID), so a later run can resume")
    run.add_argument("--journal", metavar="URL", help="record every unit of work in this journal")
    _json_option(run)
    run.set_defaults(run=start.run)

    cron = commands.add_parser("schedule", help="run a step on a cron schedule until SIGINT or SIGTERM")
    cron.add_argument("-s", "--step", required=True, help="import path of a step (package.module:step)")
    cron.add_argument("--cron", required=True, help="cron expression, e.g. '*/5 * * * *' (local time)")
    cron.add_argument("-c", "--callback", help="import path of the task callback")
    cron.add_argument("-i", "--initial-context", help="the step's initial context (a string)")
    _storage_options(cron)
    cron.add_argument("-m", "--mode", default="sequential", choices=MODES)
    cron.add_argument("--resume", action="store_true", help="skip tasks an earlier run committed")
    cron.add_argument("--overlap", default="skip", choices=("skip", "queue", "parallel"),
                      help="when a run is due while the previous one still runs")  # fmt: skip
    cron.add_argument("--workflow-id", help="a fixed workflow id (name or UUID), so runs can resume")
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

    journal = commands.add_parser("journal", help="inspect and audit the journal")
    sub = journal.add_subparsers(title="journal commands", metavar="COMMAND")

    listing = sub.add_parser("list", help="units of work, newest first")
    _url_option(listing)
    listing.add_argument("--workflow", help="only this workflow id")
    listing.add_argument("--task", help="only this task id")
    listing.add_argument("--outcome", choices=JOURNAL_OUTCOMES)
    listing.add_argument("--since", metavar="TIME", help="started at or after (ISO 8601, UTC if no offset)")
    listing.add_argument("--until", metavar="TIME", help="started before (ISO 8601)")
    listing.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    _json_option(listing)
    listing.set_defaults(run=journal_commands.list_units)

    show = sub.add_parser("show", help="one unit of work and its writes")
    show.add_argument("unit", metavar="UNIT", help="a unit id (or a unique prefix of one)")
    _url_option(show)
    _json_option(show)
    show.set_defaults(run=journal_commands.show_unit)

    prints = sub.add_parser("fingerprints", help="each workflow's current input fingerprint")
    _url_option(prints)
    _json_option(prints)
    prints.set_defaults(run=journal_commands.fingerprints)

    verify = sub.add_parser("verify", help="compare every committed write with what the storage holds")
    _url_option(verify)
    _storage_options(verify, default="file")
    verify.add_argument("--workflow", help="only this workflow's keys")
    _json_option(verify)
    verify.set_defaults(run=journal_commands.verify)

    upgrade = sub.add_parser("upgrade", help="run the schema migrations up to the current revision")
    _url_option(upgrade)
    upgrade.set_defaults(run=journal_commands.upgrade)

    timeline = sub.add_parser("timeline", help="a workflow's attempts over time, task by task")
    timeline.add_argument("workflow", metavar="WORKFLOW")
    _url_option(timeline)
    timeline.add_argument("--html", metavar="FILE", help="write a self-contained HTML page (inline SVG)")
    _json_option(timeline)
    timeline.set_defaults(run=journal_commands.timeline)
    return parser


def _storage_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("-o", "--storage", choices=STORAGES, default=default)
    parser.add_argument("-p", "--path", default=Settings.START_PATH, help="folder of StorageFile (file, batch)")
    parser.add_argument("--bucket", help="bucket of StorageS3 / StorageGCS")
    parser.add_argument("--prefix", help="key prefix inside the bucket")
    parser.add_argument("--region", help="region of StorageS3")
    parser.add_argument("--endpoint-url", help="endpoint of an S3-compatible server (StorageS3)")
    parser.add_argument("--project", help="project of StorageGCS")
    parser.add_argument("--storage-url", metavar="URL", help="database of StorageSQL")


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DOTFLOW_JOURNAL_URL"),
        help="journal database URL (default: $DOTFLOW_JOURNAL_URL)",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value
