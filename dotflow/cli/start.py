"""`dotflow start`: build a workflow from import paths and options, run it, print each task's outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uow import Persistence

from dotflow.cli import CommandError
from dotflow.cli.output import emit, outcome_style
from dotflow.cli.storages import build_storage
from dotflow.core.types.status import TypeStatus
from uow.outcomes import COMMITTED, FAILED

_OUTCOME_OF_STATUS = {TypeStatus.COMPLETED: COMMITTED, TypeStatus.FAILED: FAILED}  # for the colour of a status

if TYPE_CHECKING:
    from dotflow.core.task import Task

__all__ = ["run"]

STEP_ONLY = ("callback", "initial_context", "storage", "workflow_id", "journal")


def run(args: Any) -> int:
    from dotflow import Config, DotFlow
    from dotflow.core.module import Module

    if args.workflow:
        given = [f"--{name.replace('_', '-')}" for name in STEP_ONLY if getattr(args, name) is not None]
        if given:
            raise CommandError(f"{', '.join(given)} cannot be used with --workflow (the factory configures it)", 2)
        flow = Module(args.workflow)()
        if not isinstance(flow, DotFlow):
            raise CommandError(f"--workflow {args.workflow!r} did not return a DotFlow", 2)
        return _report(args, flow, _run(args, flow))
    storage = build_storage(args)
    config = Config(storage=storage, journal=args.journal)
    try:
        flow = DotFlow(config=config, workflow_id=args.workflow_id)
        add: dict[str, Any] = {"step": args.step, "initial_context": args.initial_context}
        if args.callback:
            add["callback"] = args.callback
        flow.task.add(**add)
        return _report(args, flow, _run(args, flow))
    finally:
        Persistence(config.storage, config.journal).close()  # the storage first, then its journal


def _run(args: Any, flow: Any) -> list[Any]:
    manager = flow.start(mode=args.mode, resume=args.resume)
    if manager.thread is not None:  # background: the command still waits for the run to end
        manager.thread.join()
    return list(flow.result_task())


def _report(args: Any, flow: Any, tasks: list[Any]) -> int:
    data = [_task_data(task) for task in tasks]
    rows = [
        (d["task_id"], _styled_status(d["status"]), d["duration"], "yes" if d["restored"] else "", d["error"])
        for d in data
    ]
    emit(
        args,
        {"workflow_id": str(flow.workflow_id), "tasks": data},
        columns=("task", "status", "seconds", "restored", "error"),
        rows=rows,
        title=f"workflow {flow.workflow_id}",
    )
    return 1 if any(d["status"] == TypeStatus.FAILED for d in data) else 0


def _task_data(task: Task) -> dict[str, Any]:
    status = task.status
    errors = task.errors
    last = errors[-1] if errors and status == TypeStatus.FAILED else None
    message = None if last is None else f"{last.exception}: {last.message}".strip(": ")
    return {
        "task_id": str(task.task_id),
        "status": str(status),
        "duration": task.duration,
        "restored": bool(task.restored),
        "error": message or None,
    }


def _styled_status(status: str) -> Any:
    from rich.text import Text

    return Text(status, style=outcome_style(_OUTCOME_OF_STATUS.get(status, "")))
