"""The journal as dotflow uses it: checksums of the checkpoint encoding, and `Config(journal=URL)`."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from dotflow.core import codec
from dotflow.core.context import Context

__all__ = ["checkpoint_bytes", "open_journal"]

_PLAIN_DEPTH = 64  # deeper values take the codec's own path (which also refuses cycles)
_WRITE_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # codec.dumps' settings


def checkpoint_bytes(value: Any) -> bytes:
    """The deterministic bytes a journal checksums: the value's Context in the codec's JSON encoding.

    A Context holding plain JSON data (None, bool, int, finite float, str, lists, dicts with str keys
    not starting with "$"), the common case, is written directly: the codec would encode such data
    as itself, so the bytes are the same (`tests/unit/test_journal_checksum_bytes.py`), about three
    times faster. Anything else goes through `codec.dumps`.
    """
    context = value if isinstance(value, Context) else Context(storage=value)
    stamp = context.time
    storage = context.storage
    if (stamp is None or (type(stamp) is datetime and stamp.tzinfo in (None, timezone.utc))) and _plain(storage, 0):
        workflow_id = context.workflow_id
        tree = {
            "$context": {
                "storage": storage,
                "task_id": context.task_id,
                "workflow_id": None if workflow_id is None else str(workflow_id),
                "time": None if stamp is None else stamp.isoformat(),
            }
        }
        return _WRITE_JSON(tree).encode("ascii")
    return codec.dumps(context).encode("ascii")


def _plain(value: Any, depth: int) -> bool:
    """True if the codec writes `value` as it is (see `checkpoint_bytes`).

    Scalars inside a container are checked in its loop (one call per container, not per item).
    """
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str or key.startswith("$"):
                return False
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return _plain_scalar(value)
    if depth >= _PLAIN_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif not _plain(item, depth + 1):
            return False
    return True


def _plain_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    return kind is float and math.isfinite(value)


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
