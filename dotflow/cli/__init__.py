"""The `dotflow` command: `start` a workflow, and audit the journal (`dotflow journal ...`).

Every command prints a readable table (rich) or, with `--json`, JSON for scripts. An error is one
line on stderr ("dotflow: error: ...") and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["CommandError", "main"]


class CommandError(Exception):
    """A problem with what the user asked for; printed as one line, exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
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
    args = parser.parse_args(given)
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
        return 1


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ImportError, ValueError, CommandError)) else f"{type(error).__name__}: {text}"


def _say(message: str) -> None:
    from uow.sql_engine import mask_url  # no password of a database URL reaches the terminal

    print(f"dotflow: error: {mask_url(message)}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
