"""`dotflow start`: build a workflow from a step or a factory, run it, print each task and a summary.

`--step` and `--workflow` take `package.module:name` (or `package.module.name`) or
`path/to/file.py:name`; the current folder is importable, as with `python -m`. An import that fails
names its real cause (the module, the attribute, or the dependency that is missing).

With `--workflow` (a function returning a DotFlow), `--journal`, `--resume` and `--workflow-id`
apply to the workflow it returns; options that build the workflow (`--storage`, `-c`, `-i`) are the
factory's business and are refused. `$DOTFLOW_JOURNAL_URL` gives the journal when `--journal` is
not given (and the factory configured none).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotflow.cli import CommandError
from dotflow.cli.output import duration, emit, outcome_style, say, short, text
from dotflow.cli.parser import JOURNAL_URL_VARIABLE
from dotflow.cli.storages import build_storage
from dotflow.core.types.status import TypeStatus
from uow.outcomes import COMMITTED, FAILED, TASK_ADOPTED

if TYPE_CHECKING:
    from dotflow.core.task import Task

__all__ = ["load", "run"]

_OUTCOME_OF_STATUS = {TypeStatus.COMPLETED: COMMITTED, TypeStatus.FAILED: FAILED}  # for the colour of a status
STEP_ONLY = {"callback": "--callback", "initial_context": "--initial-context", "storage": "--storage"}


def run(args: Any) -> int:
    from dotflow import Config, DotFlow
    from uow import Persistence

    claim = _claim(args)  # bad claim options are refused before anything is built
    if args.workflow:
        given = [flag for name, flag in STEP_ONLY.items() if getattr(args, name) is not None]
        if given:
            raise CommandError(f"{', '.join(given)} cannot be used with --workflow (the factory configures it)", 2)
        factory = load(args.workflow, "--workflow")
        try:
            flow = factory()
        except Exception as error:
            raise CommandError(f"--workflow {args.workflow!r} raised {type(error).__name__}: {error}", 2) from None
        if not isinstance(flow, DotFlow):
            raise CommandError(f"--workflow {args.workflow!r} did not return a DotFlow", 2)
        _apply_to_factory(args, flow)
        return _report(args, flow, *_run(args, flow, claim))
    step = load(args.step, "--step")
    callback = load(args.callback, "--callback") if args.callback else None
    storage = build_storage(args)
    config = Config(storage=storage, journal=args.journal)
    try:
        flow = DotFlow(config=config, workflow_id=args.workflow_id)
        add: dict[str, Any] = {"step": step, "initial_context": args.initial_context}
        if callback is not None:
            add["callback"] = callback
        flow.task.add(**add)
        return _report(args, flow, *_run(args, flow, claim))
    finally:
        Persistence(config.storage, config.journal).close()  # the storage first, then its journal


def load(spec: str, option: str) -> Any:
    """The object `spec` names (`module:name`, `module.name` or `path/to/file.py:name`); one clear
    CommandError naming the real cause when it cannot be imported."""
    if ":" in spec:
        where, _, name = spec.rpartition(":")
    else:
        where, _, name = spec.rpartition(".")
    if not where or not name:
        raise CommandError(f"{option} {spec!r}: expected module:name or path/to/file.py:name", 2)
    label = f"{option} {spec!r}"
    module = _import_file(where, label) if where.endswith(".py") else _import_module(where, label)
    found: Any = module
    for part in name.split("."):
        if not hasattr(found, part):
            raise CommandError(f"{label}: {where!r} has no attribute {part!r}", 2)
        found = getattr(found, part)
    return found


def _import_module(name: str, option: str) -> Any:
    folder = os.getcwd()
    if folder not in sys.path and "" not in sys.path:
        sys.path.insert(0, folder)  # the current folder is importable, as with `python -m`
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing == name or name.startswith(missing + "."):
            raise CommandError(
                f"{option}: no module named {missing!r} (looked in the current folder and on sys.path)", 2
            ) from None
        raise CommandError(f"{option}: importing {name!r} failed: no module named {missing!r} "
                           "(a module it imports is missing: is it installed?)", 2) from None  # fmt: skip
    except Exception as error:
        raise CommandError(f"{option}: importing {name!r} failed: {type(error).__name__}: {error}", 2) from None


def _import_file(path: str, option: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{option}: no file {path!r}", 2)
    name = file.stem
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # its siblings import as they would with `python path/to/file.py`
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CommandError(f"{option}: {path!r} cannot be imported as Python", 2)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        del sys.modules[name]
        raise CommandError(f"{option}: importing {path!r} failed: no module named {error.name!r} "
                           "(a module it imports is missing: is it installed?)", 2) from None  # fmt: skip
    except Exception as error:
        del sys.modules[name]
        raise CommandError(f"{option}: importing {path!r} failed: {type(error).__name__}: {error}", 2) from None
    return module


def _apply_to_factory(args: Any, flow: Any) -> None:
    """`--journal` and `--workflow-id` set on the factory's workflow (`$DOTFLOW_JOURNAL_URL` only when
    the factory configured no journal)."""
    from dotflow.core.context import canonical_workflow_id
    from dotflow.run.journal_config import open_journal

    config = flow._config
    from_environment = args.journal is not None and args.journal == os.environ.get(JOURNAL_URL_VARIABLE)
    if args.journal is not None and not (from_environment and config.journal is not None):
        config.journal = open_journal(args.journal)
    if args.workflow_id is not None:
        flow.workflow_id = canonical_workflow_id(args.workflow_id)


def _run(args: Any, flow: Any, claim: Any) -> tuple[list[Any], Any, float]:
    from dotflow.storage.memory import StorageDefault

    if args.resume and type(flow._config.storage) is StorageDefault:
        print(
            "dotflow: warning: --resume with the in-memory storage: a new process starts empty, so nothing can be "
            "resumed (use --storage file, batch, sql, s3 or gcs)",
            file=sys.stderr,
        )
    began = time.perf_counter()
    options = {} if claim is None else {"claim": claim}
    manager = flow.start(mode=args.mode, resume=args.resume, verify_resume=args.verify_resume, **options)
    if manager.thread is not None:  # background: the command still waits for the run to end
        manager.thread.join()
    return list(flow.result_task()), manager, time.perf_counter() - began


def _claim(args: Any) -> Any:
    """The run's `Claim` (--claim, --claim-ttl), or None."""
    if args.claim is None:
        if args.claim_ttl is not None:
            raise CommandError("--claim-ttl needs --claim task or --claim workflow", 2)
        return None
    if not args.resume:
        raise CommandError("--claim needs --resume: claims let workers resume one workflow, each step once", 2)
    from dotflow import Claim

    try:
        return Claim(scope=args.claim, ttl=30.0 if args.claim_ttl is None else args.claim_ttl)
    except ValueError as error:
        raise CommandError(str(error).replace("Claim(ttl=...)", "--claim-ttl"), 2) from None


def _report(args: Any, flow: Any, tasks: list[Any], manager: Any, seconds: float) -> int:
    data = [_task_data(task) for task in tasks]
    run_id = manager.persistence.run_id
    counts = dict(manager.persistence.counts or {})
    if args.json:
        emit(args, {"workflow_id": str(flow.workflow_id), "run_id": run_id, "seconds": seconds, "tasks": data,
                    "summary": counts})  # fmt: skip
    else:
        if not args.quiet:
            emit(
                args,
                None,
                columns=("task", "status", "took", "restored", "error"),
                rows=[(d["task_id"], _styled_status(d["status"]), duration(d["duration"]),
                       "yes" if d["restored"] else "", d["error"]) for d in data],  # fmt: skip
                title=f"workflow {flow.workflow_id}",
            )
        summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n or name != TASK_ADOPTED)
        say(f"workflow {flow.workflow_id}, run {short(run_id)}: {len(data)} task(s): {summary}, in {duration(seconds)}")
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
        "result": _result(task) if status == TypeStatus.COMPLETED else None,
    }


def _result(task: Task) -> Any:
    """The task's value in the checkpoint encoding's JSON (tagged forms for tuples, dates, ...)."""
    from dotflow.values import codec

    try:
        return codec.encode(task.current_context.storage)
    except Exception as error:  # never str(value): say that it cannot be shown
        return {"$unencodable": type(error).__name__}


def _styled_status(status: str) -> Any:
    return text(status, outcome_style(_OUTCOME_OF_STATUS.get(status, "")))
