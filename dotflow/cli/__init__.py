"""The `dotflow` command: `start` a workflow, and audit the journal (`dotflow journal ...`).

Every command prints a readable table (rich) or, with `--json`, JSON for scripts. An error is one
line on stderr ("dotflow: error: ...") and exit status 2, never a traceback, and nothing written.
`start` exits 1 when a task failed, `journal verify` when it finds a problem: those are answers,
not errors.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["CommandError", "main"]


class CommandError(Exception):
    """A problem with what the user asked for; printed as one line, exit status `status`."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None) -> int:
    from dotflow.cli.more_commands import NOT_SHIPPED, not_shipped_message
    from dotflow.cli.parser import build_parser

    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0] in NOT_SHIPPED:  # whatever options follow (1.0.1's are not parsed here)
        _say(not_shipped_message(given[0]))
        return 2
    parser = build_parser()
    try:
        args = parser.parse_args(given)
    except CommandError as error:  # a usage error: one line too
        _say(str(error))
        return error.status
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except CommandError as error:
        _say(str(error))
        return error.status
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as error:  # any other failure: one line, not a traceback
        _say(_one_line(error))
        return 2


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, ModuleNotFoundError) and error.name in _EXTRAS:
        return f"this command needs the '{_EXTRAS[error.name]}' extra: pip install 'dotflow-uow[{_EXTRAS[error.name]}]'"
    return text if isinstance(error, (ImportError, ValueError, CommandError)) else f"{type(error).__name__}: {text}"


# A module an extra installs -> the extra (for a ModuleNotFoundError raised deep inside a library)
_EXTRAS = {"sqlalchemy": "sql", "alembic": "sql", "psycopg": "postgres", "boto3": "s3", "botocore": "s3",
           "croniter": "scheduler"}  # fmt: skip


def _say(message: str) -> None:
    from uow.sql_engine import mask_url  # no password of a database URL reaches the terminal

    line = " ".join(mask_url(message).split())  # one line, whatever the message holds
    print(f"dotflow: error: {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
