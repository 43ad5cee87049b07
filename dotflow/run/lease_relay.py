"""A claimed commit made in a child process, checked in the parent's storage transaction.

A child's storage is a relay to its parent (`dotflow.run.processes`). For a storage whose transactions
can check a lease (`uow.SupportsLeaseTransaction`: SQL, memory), the relay offers `lease_transaction()`
too: the block's writes and lease checks are recorded in the child, each answered "done", and sent to
the parent as one call when the block ends; the parent runs them in one transaction of the real
storage, in order, and a check or a conditional write that fails rolls the whole transaction back and
raises there (`LeaseLostError`, `ConflictError`), which the child's commit receives as its own. So a
worker whose lease changed hands cannot commit from a child process either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from uow import Binding, ConflictError, LeaseLostError, LeaseTransaction

__all__ = ["RecordedTransaction", "recording", "run_recorded_transaction"]

# What a recorded block may do, and how the parent does it on the real transaction. A post_if,
# delete_if, holds_lease or release_lease that answers False fails the transaction.
OPERATIONS: dict[str, Callable[[LeaseTransaction, dict[str, Any]], Any]] = {
    "post": lambda t, kw: t.post(**kw),
    "delete": lambda t, kw: t.delete(**kw),
    "post_if": lambda t, kw: t.post_if(**kw),
    "delete_if": lambda t, kw: t.delete_if(**kw),
    "holds_lease": lambda t, kw: t.holds_lease(**kw),
    "release_lease": lambda t, kw: t.release_lease(**kw),
}
_MUST_HOLD = frozenset({"post_if", "delete_if", "holds_lease", "release_lease"})


class RecordedTransaction:
    """The child's side of a relayed lease transaction: records each call and answers it "done"; the
    parent decides (see the module docstring)."""

    def __init__(self) -> None:
        self.operations: list[tuple[str, dict[str, Any]]] = []

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.operations.append(("post", {"key": key, "context": context, "ttl": ttl, "fingerprint": fingerprint}))

    def delete(self, key: str) -> bool:
        self.operations.append(("delete", {"key": key}))
        return True

    def post_if(self, key: str, context: Any, *, version: str | None, ttl: int | None = None,
                fingerprint: str | None = None) -> bool:  # fmt: skip
        kwargs = {"key": key, "context": context, "version": version, "ttl": ttl, "fingerprint": fingerprint}
        self.operations.append(("post_if", kwargs))
        return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        self.operations.append(("delete_if", {"key": key, "version": version}))
        return True

    def holds_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        self.operations.append(("holds_lease", {"key": key, "owner": owner, "epoch": epoch}))
        return True

    def release_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        self.operations.append(("release_lease", {"key": key, "owner": owner, "epoch": epoch}))
        return True


@contextmanager
def recording(send: Callable[[list[tuple[str, dict[str, Any]]]], None]) -> Iterator[RecordedTransaction]:
    """A block whose recorded operations are handed to `send` when it ends normally (nothing if it raises)."""
    recorded = RecordedTransaction()
    yield recorded
    send(recorded.operations)


def run_recorded_transaction(persistence: Binding, operations: list[tuple[str, dict[str, Any]]]) -> None:
    """In the parent: a child's recorded block, in one lease transaction of the real storage."""
    with persistence.lease_transaction() as transaction:
        for name, kwargs in operations:
            done = OPERATIONS[name](transaction, kwargs)
            if name in _MUST_HOLD and not done:
                if name in ("holds_lease", "release_lease"):
                    raise LeaseLostError(kwargs["key"], kwargs["owner"], kwargs["epoch"])
                raise ConflictError(kwargs["key"], kwargs["version"])
