"""`dotflow schedule`, `dotflow logs`, `dotflow init`, and 1.0.1's cloud commands, which are not shipped."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from dotflow.cli import CommandError
from dotflow.cli.storages import build_storage

__all__ = ["NOT_SHIPPED", "init", "logs", "not_shipped", "not_shipped_message", "schedule"]

NOT_SHIPPED = ("cloud", "deploy", "login", "logout")
TEMPLATE_FILES = {"pipeline.py.tmpl": "pipeline.py", "README.md.tmpl": "README.md", "gitignore.tmpl": ".gitignore"}
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Extra SchedulerCron arguments (tests set clock= and sleep= here)
SCHEDULER_OPTIONS: dict[str, Any] = {}


def schedule(args: Any) -> int:
    """Run a step on a cron schedule until SIGINT or SIGTERM (1.0.1's flags)."""
    from dotflow import Config, DotFlow
    from dotflow.providers import SchedulerCron

    try:
        scheduler = SchedulerCron(cron=args.cron, overlap=args.overlap, **SCHEDULER_OPTIONS)
    except ValueError as error:
        raise CommandError(str(error), 2) from None
    config = Config(storage=build_storage(args), scheduler=scheduler, journal=args.journal)
    flow = DotFlow(config=config, workflow_id=args.workflow_id)
    add: dict[str, Any] = {"step": args.step, "initial_context": args.initial_context}
    if args.callback:
        add["callback"] = args.callback
    flow.task.add(**add)
    flow.schedule(mode=args.mode, resume=args.resume)
    return 0


def logs(args: Any) -> int:
    """Print the log file as it is (no markup is interpreted), or say that there is none."""
    path = Path(args.path)
    if not path.is_file():
        raise CommandError(f"no log file at {str(path)!r} (LogDefault(output='file') writes one)", 2)
    sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
    sys.stdout.flush()
    return 0


def init(args: Any) -> int:
    """Create a project folder from the template shipped in the package (works offline)."""
    from dotflow.settings import Settings

    name = args.name
    if not PROJECT_NAME.fullmatch(name):
        raise CommandError(f"invalid project name {name!r}: letters, digits, '_', '.', '-' (1-100)", 2)
    target = Path(args.directory or name)
    if target.exists() and any(target.iterdir()):
        raise CommandError(f"{str(target)!r} exists and is not empty", 2)
    template = Path(Settings.TEMPLATE_REPO)
    target.mkdir(parents=True, exist_ok=True)
    for source, destination in TEMPLATE_FILES.items():
        text = (template / source).read_text(encoding="utf-8").replace("{{project}}", name)
        (target / destination).write_text(text, encoding="utf-8")
    print(f"created {target}/ ({', '.join(TEMPLATE_FILES.values())}); run: cd {target} && python pipeline.py")
    return 0


def not_shipped_message(command: str) -> str:
    return (
        f"'{command}' is a dotflow 1.0.1 command this project does not ship (cloud deployment is out of scope); "
        "see docs/compatibility.md (linked from the README)"
    )


def not_shipped(args: Any) -> int:
    raise CommandError(not_shipped_message(args.command), 2)
