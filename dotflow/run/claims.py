"""Claims: leases on the storage a workflow already uses, so that several workers resuming the same
workflow run each step once.

`Claim` is what a user passes (`flow.start(resume=True, claim=Claim(...))`); `Claims` is a run's
side of it: the worker's owner id (a fresh one per process), taking a lease (`acquire`), keeping it
alive (one heartbeat thread per process), releasing it. The lease itself is the storage's
(`uow.contracts.SupportsLeases`, records described in `uow.leases`).

Taking a lease: create it if there is none; if there is one and it has expired (on the storage's
clock), take it over with a conditional replace (the next epoch), so two takers cannot both win; if
it is alive, `on_held` decides: "wait" polls with backoff (from `POLL_FIRST` seconds, doubling, at
most `POLL_MOST` or the heartbeat interval) until the lease is gone or expired, or `wait_timeout`
has passed (then `ClaimHeldError`); "skip" gives up; "raise" raises `ClaimHeldError` at once.

A held lease is renewed every `heartbeat` seconds (a conditional replace), only while it is held
that long: a step shorter than the interval costs no renewal. A renewal that finds the lease
changed hands marks it lost (the worker's commit is then refused on SQL and memory, and stays
conditional on the version seen elsewhere); one made after the lease had expired is logged.

What happens to a claim is told to the run (`Claims.run`, a `uow.RunPersistence`), which queues it
in the journal if the journal records claims (`uow.outcomes.CLAIM_EVENTS`): a lease taken; an
expired one found and taken over (two events: the previous owner's lease "expired", ours "taken
over", each with the previous owner and how long past its expiry it was found); a renewal made
more than `LATE_RENEWAL` of an interval after it was due ("renewed late": with the defaults, ttl
30 s and a renewal due every 10 s, one made 15 s or more after the previous write, less than 15 s
before the lease would have expired), or after the lease had expired; a lease released (deleted by
its owner, or by the commit's transaction); a lease lost (a renewal, release or commit that found
it in other hands).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Final

from uow import Binding, Lease, RunPersistence
from uow.outcomes import (
    CLAIM_EXPIRED,
    CLAIM_LOST,
    CLAIM_RELEASED,
    CLAIM_RENEWED_LATE,
    CLAIM_TAKEN,
    CLAIM_TAKEN_OVER,
)

from dotflow.core.exception import ClaimHeldError

__all__ = ["Claim", "Claims", "Holding", "SCOPES", "ON_HELD", "workflow_claim_key"]

SCOPES: Final = ("task", "workflow")
ON_HELD: Final = ("wait", "skip", "raise")
POLL_FIRST: Final = 0.05  # seconds before the first poll of a held lease; doubles after each
POLL_MOST: Final = 1.0  # the longest pause between two polls (or the heartbeat interval, if shorter)
LATE_RENEWAL: Final = 0.5  # a renewal made more than this part of an interval after it was due is "renewed late"

logger = logging.getLogger("dotflow")


def _seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Claim({name}=...) must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"Claim({name}=...) must be {'at least 0' if allow_zero else 'more than 0'} seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Claim:
    """How a run claims its work: `flow.start(resume=True, claim=Claim(...))`.

    - `scope`: "task" (a lease per task, taken before it runs) or "workflow" (one lease for the run);
    - `ttl`: seconds a lease lives unless renewed;
    - `heartbeat`: seconds between renewals while a lease is held (None: ttl / 3); less than ttl;
    - `on_held`: what a worker does when another holds the lease: "wait", "skip" or "raise";
    - `wait_timeout`: the longest wait for "wait", in seconds (None: as long as it takes, which is
      bounded: a holder that dies stops renewing, and its lease expires after ttl).

    `clock` (monotonic seconds) and `sleep` time the waits and the heartbeat; tests pass fakes.
    """

    scope: str = "task"
    ttl: float = 30.0
    heartbeat: float | None = None
    on_held: str = "wait"
    wait_timeout: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"Claim(scope=...) must be one of {', '.join(map(repr, SCOPES))}, not {self.scope!r}")
        if self.on_held not in ON_HELD:
            raise ValueError(f"Claim(on_held=...) must be one of {', '.join(map(repr, ON_HELD))}, not {self.on_held!r}")
        object.__setattr__(self, "ttl", _seconds(self.ttl, "ttl"))
        if self.heartbeat is not None:
            beat = _seconds(self.heartbeat, "heartbeat")
            if beat >= self.ttl:
                raise ValueError(f"Claim(heartbeat={beat!r}) must be shorter than ttl ({self.ttl!r}): the lease would lapse between renewals")
            object.__setattr__(self, "heartbeat", beat)
        if self.wait_timeout is not None:
            object.__setattr__(self, "wait_timeout", _seconds(self.wait_timeout, "wait_timeout", allow_zero=True))
        if not callable(self.clock) or not callable(self.sleep):
            raise TypeError("Claim(clock=..., sleep=...) must be callables")

    @property
    def interval(self) -> float:
        """Seconds between two renewals of a held lease."""
        return self.heartbeat if self.heartbeat is not None else self.ttl / 3


def workflow_claim_key(workflow_id: object) -> str:
    """The key a workflow-scoped lease is named after: the workflow id (no task's key is that)."""
    return str(workflow_id)


class Holding:
    """A lease this worker holds; `release()` once the guarded work is committed (or has failed)."""

    def __init__(self, claims: Claims, persistence: Binding, lease: Lease, task_id: object = None) -> None:
        self.claims = claims
        self.persistence = persistence
        self.lease = lease
        self.task_id = task_id  # the task it guards (None: the whole workflow)
        self.lock = threading.Lock()  # held by a renewal, and by a commit that checks the lease
        self.done = False  # released (or forgotten): no renewal any more
        self.lost = False  # a renewal found it in another worker's hands
        self.written = claims.claim.clock()  # when it was last written (taken or renewed), on the claim's clock
        self.next_beat = self.written + claims.claim.interval

    @property
    def key(self) -> str:
        return self.lease.key

    @property
    def owner(self) -> str:
        return self.lease.owner

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    def renew(self) -> bool:
        """Extend the lease (a conditional replace); False if it changed hands (now `lost`)."""
        with self.lock:
            if self.done or self.lost:
                return False
            old = self.lease
            claim = self.claims.claim
            started = claim.clock()
            renewed = self.persistence.replace_lease(
                old.key, version=old.version, owner=old.owner, epoch=old.epoch, ttl=claim.ttl
            )
            if renewed is None:
                self.lost = True
                logger.warning("claim on %r (epoch %d) was lost: another worker took it over", old.key, old.epoch)
                self.claims.tell(self.persistence, CLAIM_LOST, old, task_id=self.task_id)
                return False
            expired = renewed.now >= old.expires_at
            if expired:
                logger.warning("claim on %r (epoch %d) was renewed %.1f s after it had expired",
                               old.key, old.epoch, renewed.now - old.expires_at)  # fmt: skip
            overdue = started - (self.written + claim.interval)
            if expired or overdue > LATE_RENEWAL * claim.interval:
                self.claims.tell(self.persistence, CLAIM_RENEWED_LATE, renewed, task_id=self.task_id,
                                 late=max(overdue, 0.0))  # fmt: skip
            self.lease = renewed
            self.written = claim.clock()
            self.next_beat = self.written + claim.interval
            return True

    def released_by_commit(self) -> None:
        """The commit's transaction released the lease (it checked it was still ours): stop renewing."""
        with self.lock:
            if self.done:
                return
            self.done = True
        self.claims._unregister(self)
        self.claims.tell(self.persistence, CLAIM_RELEASED, self.lease, task_id=self.task_id)

    def lose(self) -> None:
        """The lease is no longer ours (a commit found it in other hands): stop renewing, delete nothing."""
        with self.lock:
            self.done = True
            told = self.lost
            self.lost = True
        self.claims._unregister(self)
        if not told:  # (a renewal that found it lost told already)
            self.claims.tell(self.persistence, CLAIM_LOST, self.lease, task_id=self.task_id)

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still this worker's (errors are logged: a
        lease left behind only expires)."""
        with self.lock:
            if self.done:
                return
            self.done = True
            lease = self.lease
            lost = self.lost
        self.claims._unregister(self)
        if lost:
            return
        try:
            deleted = self.persistence.delete_lease(lease.key, version=lease.version)
        except Exception as error:
            logger.warning("claim on %r could not be released (it expires in %.1f s): %s", lease.key,
                           lease.remaining, error)  # fmt: skip
            return
        if deleted:
            self.claims.tell(self.persistence, CLAIM_RELEASED, lease, task_id=self.task_id)
        else:  # renewed or taken over by another worker since this one last wrote it
            with self.lock:
                self.lost = True
            self.claims.tell(self.persistence, CLAIM_LOST, lease, task_id=self.task_id)


class Claims:
    """A run's claims: its `Claim`, the worker's owner id, the leases held and their heartbeat.

    Made once per run; a child process (fork) gets a fresh owner id and its own heartbeat thread.
    `heartbeat_thread = False` (tests that pause a worker by moving a fake clock) leaves renewals to
    explicit `beat()` calls.
    """

    heartbeat_thread = True

    def __init__(self, claim: Claim, run: RunPersistence | None = None) -> None:
        if not isinstance(claim, Claim):
            raise TypeError(f"claim must be a dotflow.Claim, not {type(claim).__name__}")
        self.claim = claim
        self.run = run  # told what happens to the claims (None: nobody is told)
        self.workflow: Holding | None = None  # the run's lease, for scope="workflow"
        self._pid = -1
        self._owner = ""
        self._held: set[Holding] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        """This worker's owner id: host, process id and a random part, fresh in each process."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._owner = f"{_hostname()}:{pid}:{uuid.uuid4().hex[:12]}"
            self._held = set()  # a forked child holds none of its parent's leases
            self._wake = threading.Condition()
            self._thread = None
        return self._owner

    # -- taking a lease ------------------------------------------------------------------------

    def acquire(self, persistence: Binding, key: str, *, what: str, on_held: str | None = None,
                task_id: object = None) -> Holding | None:  # fmt: skip
        """Take `key`'s lease (see the module docstring); None when `on_held` is "skip" and it is held.
        `task_id`: the task the lease guards, as the journal records it (None: the workflow)."""
        claim = self.claim
        policy = claim.on_held if on_held is None else on_held
        owner = self.owner
        started = claim.clock()
        pause = POLL_FIRST
        most = min(POLL_MOST, claim.interval)
        vanished = 0  # leases that were there to create and gone to read, in a row
        while True:
            previous: Lease | None = None  # an expired lease this worker takes over
            lease = persistence.create_lease(key, owner=owner, ttl=claim.ttl)
            if lease is None:
                current = persistence.read_lease(key)
                if current is None:  # released meanwhile: create again (at once, the first times)
                    vanished += 1
                    if vanished > 3:
                        claim.sleep(POLL_FIRST)
                    continue
                vanished = 0
                if not current.expired:
                    waited = claim.clock() - started
                    if policy == "skip":
                        logger.info("%s: skipped, claimed by worker %r", what, current.owner)
                        return None
                    timeout = claim.wait_timeout
                    if policy == "raise" or (timeout is not None and waited >= timeout):
                        raise ClaimHeldError(what, key, current.owner, current.epoch, current.remaining,
                                             None if policy == "raise" else waited)  # fmt: skip
                    sleep = min(pause, current.remaining + POLL_FIRST)
                    if timeout is not None:
                        sleep = min(sleep, max(0.0, timeout - waited))
                    claim.sleep(max(sleep, 0.001))
                    pause = min(pause * 2, most)
                    continue
                lease = persistence.replace_lease(
                    key, version=current.version, owner=owner, epoch=current.epoch + 1, ttl=claim.ttl
                )
                if lease is None:
                    continue  # another worker took it over first, or it was renewed: look again
                logger.warning("%s: took over the expired claim of worker %r (epoch %d)", what, current.owner,
                               lease.epoch)  # fmt: skip
                previous = current
            self._taken(persistence, lease, previous, task_id)
            holding = Holding(self, persistence, lease, task_id)
            self._register(holding)
            return holding

    def _taken(self, persistence: Binding, lease: Lease, previous: Lease | None, task_id: object) -> None:
        """Tell the run a lease was taken: created, or (`previous`) an expired one taken over."""
        if previous is None:
            self.tell(persistence, CLAIM_TAKEN, lease, task_id=task_id)
            return
        late: float | None = previous.now - previous.expires_at
        if late is not None and not math.isfinite(late):
            late = None  # an unreadable record has no expiry
        self.tell(persistence, CLAIM_EXPIRED, previous, task_id=task_id, late=late)
        self.tell(persistence, CLAIM_TAKEN_OVER, lease, task_id=task_id, previous_owner=previous.owner, late=late)

    def tell(self, persistence: Binding, event: str, lease: Lease, *, task_id: object = None,
             previous_owner: str | None = None, late: float | None = None) -> None:  # fmt: skip
        """Tell the run that `event` happened to `lease` (queued in its journal; see the module docstring)."""
        run = self.run
        if run is not None:
            run.claim_event(persistence, event, key=lease.key, owner=lease.owner, epoch=lease.epoch, task_id=task_id,
                            previous_owner=previous_owner, late=late)  # fmt: skip

    # -- the heartbeat ---------------------------------------------------------------------------

    def beat(self) -> int:
        """Renew every held lease whose renewal is due by `claim.clock()`; the number renewed."""
        now = self.claim.clock()
        with self._wake:
            due = [holding for holding in self._held if holding.next_beat <= now]
        renewed = 0
        for holding in due:
            try:
                if holding.renew():
                    renewed += 1
                else:
                    self._unregister(holding)  # released or lost: nothing more to renew
            except Exception as error:  # the storage failed: try again a little later
                holding.next_beat = self.claim.clock() + self.claim.interval / 4
                logger.warning("claim on %r could not be renewed: %s", holding.key, error)
        return renewed

    def _register(self, holding: Holding) -> None:
        self.owner  # (a fork resets the registry before a holding of this process is added)
        with self._wake:
            self._held.add(holding)
            if self._thread is None and self.heartbeat_thread:
                self._thread = threading.Thread(target=self._heartbeat, name="dotflow-claims", daemon=True)
                self._thread.start()
        # The thread is not woken: it sleeps an interval at most, and a new lease's first renewal is due
        # an interval after it was taken, so the thread is up by then (a wake-up per task cost more).

    def _unregister(self, holding: Holding) -> None:
        with self._wake:
            self._held.discard(holding)

    def _heartbeat(self) -> None:
        """The heartbeat thread: sleeps until the next renewal is due, renews, repeats."""
        clock = self.claim.clock
        wake = self._wake
        interval = self.claim.interval
        while True:
            with wake:
                wait = min((holding.next_beat for holding in self._held), default=math.inf) - clock()
                if wait > 0:
                    wake.wait(min(wait, interval))
                    continue
            self.beat()


def _hostname() -> str:
    try:
        return socket.gethostname() or "local"
    except OSError:
        return "local"
