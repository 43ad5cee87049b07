"""The journal as dotflow uses it: checksums of the checkpoint encoding, and `Config(journal=URL)`."""

from __future__ import annotations

from typing import Any

from uow.contracts import SupportsChecksums, SupportsRecord

from dotflow.values import codec
from dotflow.core.context import Context
from dotflow.core.exception import NotCallableObject

__all__ = ["checkpoint_bytes", "open_journal"]


def checkpoint_bytes(value: Any) -> bytes:
    """The deterministic bytes a journal checksums: the value's Context in the codec's JSON encoding."""
    return codec.dumps(value if isinstance(value, Context) else Context(storage=value)).encode("ascii")


def open_journal(journal: str | SupportsRecord | None) -> SupportsRecord | None:
    """A `uow.Journal` for a URL string; a journal object as it is, its encoder set if it checksums
    values (`uow.SupportsChecksums`) and had none. Anything else is refused: a journal must `record`."""
    if journal is None:
        return None
    if isinstance(journal, str):
        from uow.journal import Journal

        return Journal(journal, encode=checkpoint_bytes)
    if not isinstance(journal, SupportsRecord):
        raise NotCallableObject(name="journal")
    if isinstance(journal, SupportsChecksums) and journal.encode is None:
        journal.encode = checkpoint_bytes
    return journal
