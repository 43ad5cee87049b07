"""Crash trials: SIGKILL a workflow at random moments on every backend, resume it in a new process, repeat.

    python -m tests.crash_trials                       # every backend, 20 trials of 100 tasks each
    python -m tests.crash_trials --backends file sqlite --trials 50 --tasks 200 --mode parallel --seed 7

A trial runs a workflow of `--tasks` tasks (each value depends on the one before it, in sequential
mode) with a journal, on a fresh storage: the first run and up to `--max-kills` resumes are killed, each
at a random moment (after a random delay, or by the worker itself right before or right after one of its
checkpoint writes, so inside commits too), then a last resume runs to the end. Each run is a new process
(tests/crash_worker.py). The storage is read and `journal.verify` is run after every kill and at the end.

What a trial counts (the table's columns):

- kills: runs ended by SIGKILL;
- re-executed: steps run by a resume although their checkpoint was in the storage when it started
  (the executions are counted from an O_APPEND file the steps write); must be 0;
- lost: checkpoints that were in the storage after one run and gone after a later one, or missing at
  the end; must be 0;
- torn: checkpoints that could not be read, or read as a value no run would write; must be 0;
- results: the finished run's results and the stored values equal an uninterrupted run's ("ok");
- verify: what `journal.verify` reported over all its runs, by class; after a crash docs/journal.md
  allows `backed` and `unconfirmed` only (a crash loses at most outcomes not yet written: those keys
  read `unconfirmed`, never `missing`, `changed` or `unbacked`).

Backends: file (StorageFile), batch (BatchStorage(StorageFile)), sqlite and postgresql (StorageSQL, the
journal in the same database), s3 and gcs (on local moto and fake-gcs-server; a SQLite journal). The
servers are started here (tests/servers.py, tests/postgres_server.py). `--claims task|workflow` runs
every worker with `Claim(scope=..., ttl=2)`; `none` (the default) runs without.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("file", "batch", "sqlite", "postgresql", "s3", "gcs")
ALLOWED_AFTER_CRASH = frozenset({"backed", "unconfirmed"})

__all__ = ["ALLOWED_AFTER_CRASH", "BACKENDS", "Tally", "run_backend", "main"]


@dataclass
class Tally:
    backend: str
    trials: int = 0
    kills: int = 0
    re_executed: int = 0
    reruns: int = 0  # steps run again whose commit had not completed (at least once: allowed)
    lost: int = 0
    torn: int = 0
    wrong_results: int = 0
    verify: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # what went wrong, trial by trial

    @property
    def disallowed(self) -> dict[str, int]:
        return {name: count for name, count in self.verify.items() if name not in ALLOWED_AFTER_CRASH}

    @property
    def ok(self) -> bool:
        return not (self.re_executed or self.lost or self.torn or self.wrong_results or self.disallowed or self.problems)

    def row(self) -> list[str]:
        findings = ", ".join(f"{name} {count}" for name, count in sorted(self.verify.items()))
        return [self.backend, str(self.trials), str(self.kills), str(self.re_executed), str(self.reruns),
                str(self.lost), str(self.torn), "ok" if not self.wrong_results else f"{self.wrong_results} wrong",
                findings]  # fmt: skip


# -- where each backend's storage lives ----------------------------------------------------------------


class Place:
    """Hands out a fresh storage location per trial for one backend (servers started on demand)."""

    def __init__(self, backend: str, folder: Path, stack: ExitStack) -> None:
        self.backend = backend
        self.folder = folder
        self._stack = stack
        self._server: Any = None
        self._bucket: str | None = None

    def spec(self, trial: int) -> dict[str, Any]:
        here = self.folder / f"{self.backend}-{trial}"
        here.mkdir(parents=True)
        spec: dict[str, Any] = {"backend": self.backend, "journal": f"sqlite:///{here / 'journal.db'}"}
        if self.backend in ("file", "batch"):
            spec["path"] = str(here / "out")
        elif self.backend == "sqlite":
            spec["url"] = f"sqlite:///{here / 'checkpoints.db'}"
        elif self.backend == "postgresql":
            spec["url"] = self._postgres_database()
        else:
            spec.update(url=self._cloud(), bucket=self._bucket, prefix=f"trial-{trial}/")
        return spec

    def _postgres_database(self) -> str:
        if self._server is None:
            from tests.postgres_server import PostgresServer

            self._server = PostgresServer()
            self._stack.callback(self._server.stop)
        url = str(self._server.new_database())
        from uow.journal_migrate import upgrade
        from uow.sql_engine import make_engine

        engine = make_engine(url)
        upgrade(engine)  # the journal's and StorageSQL's tables
        engine.dispose()
        return url

    def _cloud(self) -> str:
        if self._server is None:
            from tests.servers import gcs_client, new_bucket_name, s3_client, start_fake_gcs, start_moto

            self._server = start_moto() if self.backend == "s3" else start_fake_gcs()
            self._stack.callback(self._server.stop)
            self._bucket = new_bucket_name(self.backend)
            if self.backend == "s3":
                s3_client(self._server.url).create_bucket(Bucket=self._bucket)
            else:
                gcs_client(self._server.url).create_bucket(self._bucket)
        return str(self._server.url)


# -- one run, one trial --------------------------------------------------------------------------------


@dataclass
class Run:
    killed: bool
    executed: list[int]  # task indexes whose step started during this run, in order
    seconds: float


def run_worker(spec: dict[str, Any], *, kill_after: float | None, timeout: float = 300.0) -> Run:
    """One run in a new process; SIGKILL it `kill_after` seconds after its run started (None: let it end).

    The process is forked from this one, which has imported dotflow, SQLAlchemy and the SDKs already
    (as a process manager would have), so a trial costs no interpreter start-up; it opens its own
    storage and journal, and writes its output to a log file next to the trial's storage.
    """
    executions = Path(spec["executions"])
    offset = executions.stat().st_size if executions.exists() else 0
    log = Path(spec["results"]).with_name(f"run-{offset}-{time.monotonic_ns()}.log")
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            os.close(ready_read)
            _die_with_parent()
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            from tests.crash_worker import main as worker_main

            worker_main(spec, started=lambda: os.write(ready_write, b"s"))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(ready_write)
    try:
        readable, _, _ = select.select([ready_read], [], [], timeout)
        began = os.read(ready_read, 1) == b"s" if readable else False
    finally:
        os.close(ready_read)
    started = time.monotonic()
    status = None
    if began and kill_after is not None:
        status = _wait(pid, kill_after)
        if status is None:
            os.kill(pid, signal.SIGKILL)
    if status is None:
        status = _wait(pid, timeout)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            _wait(pid, None)
            raise RuntimeError(f"worker {pid} still running after {timeout} s; see {log}")
    seconds = time.monotonic() - started
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if not killed and os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"worker exited with {os.waitstatus_to_exitcode(status)}:\n{log.read_text()[-3000:]}")
    lines: list[str] = []
    if executions.exists():  # (a run killed before its first step wrote nothing)
        with executions.open("rb") as stream:
            stream.seek(offset)
            lines = stream.read().decode().splitlines()
    return Run(killed, [int(line.split()[0]) for line in lines if line.strip()], seconds)


def _wait(pid: int, timeout: float | None) -> int | None:
    """The wait status of child `pid` once it ends, or None if it still runs after `timeout` seconds."""
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    handle = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if handle is not None:
                select.select([handle], [], [], left)
            else:
                time.sleep(min(left, 0.002))
    finally:
        if handle is not None:
            os.close(handle)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def read_storage(spec: dict[str, Any], keys: list[str]) -> tuple[dict[str, Any], list[str]]:
    """What the storage holds for each key (absent keys left out), and the keys that could not be read."""
    from tests.crash_worker import build_storage
    from uow import Persistence

    storage = _open_to_read(spec)
    held: dict[str, Any] = {}
    unreadable: list[str] = []
    try:
        for key in keys:
            try:
                checkpoint = storage.read_checkpoint(key)
            except Exception as error:
                unreadable.append(f"{key}: {type(error).__name__}: {error}")
                continue
            if checkpoint is not None:
                held[key] = checkpoint.context.storage
    finally:
        Persistence(storage).close()
    return held, unreadable


def _open_to_read(spec: dict[str, Any], patience: float = 10.0) -> Any:
    """The trial's storage, opened to read it. A killed parallel run's workers die with it a moment
    later (PR_SET_PDEATHSIG); until then they still hold the BatchStorage folder's lock they inherited."""
    from dotflow.storage.batch_log import LockedFolderError
    from tests.crash_worker import build_storage

    deadline = time.monotonic() + patience
    while True:
        try:
            return build_storage(spec, read_only=True)
        except LockedFolderError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def verify_journal(spec: dict[str, Any]) -> Counter[str]:
    from dotflow.run.journal_config import checkpoint_bytes
    from tests.crash_worker import build_storage, journal_url
    from uow import Journal, Persistence

    storage = _open_to_read(spec)
    journal = Journal(journal_url(spec), encode=checkpoint_bytes)
    try:
        prefix = f"{spec['workflow_id']}-"
        return Counter(finding.status for finding in journal.verify(storage, prefix=prefix))
    finally:
        Persistence(storage, journal).close()


def task_keys(spec: dict[str, Any], tasks: int) -> list[str]:
    """The checkpoint keys of the workflow's tasks, as the storage names them (task ids: "<index>-step")."""
    from types import SimpleNamespace

    from tests.crash_worker import build_storage
    from uow import Persistence

    storage = build_storage(spec, read_only=True)
    try:
        return [storage.key(task=SimpleNamespace(workflow_id=spec["workflow_id"], task_id=f"{index}-step")) for index in range(tasks)]
    finally:
        Persistence(storage).close()


def run_backend(
    backend: str,
    *,
    trials: int,
    tasks: int,
    mode: str = "sequential",
    claims: str = "none",
    max_kills: int = 3,
    seed: int | None = None,
    folder: Path | None = None,
) -> Tally:
    """`trials` crash trials on one backend; see the module docstring."""
    chooser = random.Random(seed)
    tally = Tally(backend)
    with ExitStack() as stack:
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix=f"dotflow-crash-{backend}-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        place = Place(backend, folder, stack)
        expected, duration = _uninterrupted(place, tasks, mode, claims)
        for trial in range(1, trials + 1):
            _trial(place, trial, tasks, mode, claims, max_kills, expected, duration, chooser, tally)
    return tally


def _spec(place: Place, trial: int, tasks: int, mode: str, claims: str) -> dict[str, Any]:
    spec = place.spec(trial)
    here = place.folder / f"{place.backend}-{trial}"
    spec.update(
        workflow_id=f"crash-{trial}", tasks=tasks, mode=mode, claims=claims, resume=False,
        executions=str(here / "executions"), results=str(here / "results.json"),
    )  # fmt: skip
    return spec


def _uninterrupted(place: Place, tasks: int, mode: str, claims: str) -> tuple[list[Any], float]:
    """The results of a run nobody kills, and how long its tasks took."""
    spec = _spec(place, 0, tasks, mode, claims)
    run = run_worker(spec, kill_after=None)
    results = json.loads(Path(spec["results"]).read_text())
    if results["failed"]:
        raise RuntimeError(f"{place.backend}: the uninterrupted run failed tasks {results['failed']}")
    return results["values"], max(run.seconds, 0.05)


def _trial(
    place: Place, trial: int, tasks: int, mode: str, claims: str, max_kills: int,
    expected: list[Any], duration: float, chooser: random.Random, tally: Tally,
) -> None:  # fmt: skip
    spec = _spec(place, trial, tasks, mode, claims)
    keys = task_keys(spec, tasks)
    expected_by_key = dict(zip(keys, expected))
    held: dict[str, Any] = {}
    tally.trials += 1

    def check_storage(when: str) -> dict[str, Any]:
        now, unreadable = read_storage(spec, keys)
        tally.torn += len(unreadable)
        tally.problems += [f"trial {trial} {when}: unreadable {entry}" for entry in unreadable]
        for key, value in now.items():
            if value != expected_by_key[key]:
                tally.torn += 1
                tally.problems.append(f"trial {trial} {when}: {key} holds {value!r}, no run writes that")
        gone = sorted(set(held) - set(now))
        tally.lost += len(gone)
        tally.problems += [f"trial {trial} {when}: {key} was stored, now gone" for key in gone]
        return now

    kills = chooser.randint(1, max_kills)
    ran: Counter[int] = Counter()
    re_executed = 0
    for cycle in range(kills + 1):
        committed = {index for index, key in enumerate(keys) if key in held}
        spec["resume"] = cycle > 0
        last = cycle == kills
        spec.pop("crash_at", None)
        kill_after = None
        if not last:
            if chooser.random() < 0.5:  # the worker kills itself at one of its checkpoint writes
                spec["crash_at"] = [chooser.randint(1, max(1, tasks - len(committed))), chooser.choice(["before", "after"])]
                kill_after = duration * 3 + 5  # (a safety net: it should die by itself)
            else:
                kill_after = chooser.uniform(0, duration)
        run = run_worker(spec, kill_after=kill_after)
        ran.update(run.executed)
        again = [index for index in run.executed if index in committed]
        tally.re_executed += len(again)
        re_executed += len(again)
        if again:
            tally.problems.append(f"trial {trial}, run {cycle + 1}: steps {again} ran again after their commit")
        if run.killed:
            tally.kills += 1
        held = check_storage(f"after run {cycle + 1}")
        tally.verify.update(verify_journal(spec))
        if not run.killed:
            break
    else:  # every planned kill landed: one more resume, to the end
        spec.pop("crash_at", None)
        spec["resume"] = True
        run_worker(spec, kill_after=None)
        held = check_storage("after the last resume")
        tally.verify.update(verify_journal(spec))
    tally.reruns += sum(count - 1 for count in ran.values()) - re_executed
    results = json.loads(Path(spec["results"]).read_text())
    missing = [key for key in keys if key not in held]
    tally.lost += len(missing)
    if missing:
        tally.problems.append(f"trial {trial}: {len(missing)} checkpoints missing at the end")
    if results["values"] != expected or results["failed"] or [held.get(key) for key in keys] != expected:
        tally.wrong_results += 1
        tally.problems.append(f"trial {trial}: results differ from an uninterrupted run's (failed: {results['failed']})")


# -- the command ---------------------------------------------------------------------------------------

HEADER = ["backend", "trials", "kills", "re-executed", "uncommitted reruns", "lost", "torn", "results", "verify findings"]


def table(tallies: list[Tally]) -> str:
    rows = [HEADER] + [tally.row() for tally in tallies]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--mode", choices=["sequential", "parallel"], default="sequential")
    parser.add_argument("--claims", choices=["none", "task", "workflow"], default="none")
    parser.add_argument("--max-kills", type=int, default=3, help="kills per trial at most (at least 1)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    tallies = []
    started = time.monotonic()
    for backend in args.backends:
        tally = run_backend(
            backend, trials=args.trials, tasks=args.tasks, mode=args.mode, claims=args.claims,
            max_kills=args.max_kills, seed=args.seed,
        )  # fmt: skip
        tallies.append(tally)
        print(f"{backend}: {tally.trials} trials, {tally.kills} kills, {time.monotonic() - started:.0f} s", file=sys.stderr)
        for problem in tally.problems[:20]:
            print(f"  {problem}", file=sys.stderr)
    print(table(tallies))
    return 0 if all(tally.ok for tally in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
