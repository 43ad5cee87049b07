"""The journal as dotflow uses it: checksums of the checkpoint encoding, and `Config(journal=URL)`."""

from __future__ import annotations

from typing import Any

from dotflow.core import codec
from dotflow.core.context import Context

__all__ = ["checkpoint_bytes", "open_journal"]


def checkpoint_bytes(value: Any) -> bytes:
    """The deterministic bytes a journal checksums: the value's Context in the codec's JSON encoding."""
    return codec.dumps(value if isinstance(value, Context) else Context(storage=value)).encode("ascii")


def open_journal(journal: Any) -> Any:
    """A `uow.Journal` for a URL string; a journal object as it is, its encoder set if it had none."""
    if journal is None:
        return None
    if isinstance(journal, str):
        from uow.journal import Journal

        return Journal(journal, encode=checkpoint_bytes)
    if hasattr(journal, "encode") and getattr(journal, "encode") is None:
        journal.encode = checkpoint_bytes
    return journal
