"""`main()`: the `dotflow` command, as dotflow 1.0.1's `dotflow.main` module offers it (`python -m dotflow.main`)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the command with `sys.argv`; exit with its status when it is not 0."""
    from dotflow.cli import main as run

    status = run(sys.argv[1:])
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
