"""`Context`: the value a step receives and returns, with the ids of the task that made it."""

from __future__ import annotations

import re
from datetime import datetime
from time import time as _now
from typing import Any, cast, overload
from uuid import NAMESPACE_URL, UUID, uuid5

__all__ = ["Context", "ContextInstance", "LazyTime", "canonical_workflow_id", "workflow_uuid"]

WORKFLOW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# The spellings of a UUID accepted as a workflow id: 32 hex digits, plain or hyphenated 8-4-4-4-12,
# optionally in braces or after "urn:uuid:". (`uuid.UUID` alone also takes "+", "_" or whitespace.)
_HEX32 = r"[0-9A-Fa-f]{8}(?:-?)[0-9A-Fa-f]{4}(?:-?)[0-9A-Fa-f]{4}(?:-?)[0-9A-Fa-f]{4}(?:-?)[0-9A-Fa-f]{12}"
UUID_SPELLING = re.compile(rf"(?:urn:uuid:)?(?:{_HEX32}|\{{{_HEX32}\}})", re.IGNORECASE)


def _parse_uuid(text: str) -> UUID | None:
    if not UUID_SPELLING.fullmatch(text):
        return None
    hex_digits = re.sub(r"[^0-9A-Fa-f]", "", text[9:] if text[:9].lower() == "urn:uuid:" else text)
    return UUID(hex=hex_digits) if len(hex_digits) == 32 else None


def canonical_workflow_id(workflow_id: Any) -> UUID | str:
    """The one spelling of a workflow id that keys and logs use; refuses an invalid id.

    A `UUID` is kept; a UUID string in any accepted spelling (upper case, braces, "urn:uuid:",
    no hyphens) becomes its canonical lower-case hyphenated form, so every spelling of one UUID
    gives the same checkpoint keys. A name is kept as given. Anything else (None, "", 0, a name
    with other characters or a trailing newline) raises ValueError or TypeError naming the id.
    """
    if isinstance(workflow_id, UUID):
        return workflow_id
    if isinstance(workflow_id, str):
        parsed = _parse_uuid(workflow_id)
        if parsed is not None:
            return str(parsed)
    workflow_uuid(workflow_id)  # raises for an invalid id, with the reason
    if not isinstance(workflow_id, str):  # None: workflow_uuid lets it through for Contexts
        raise TypeError("Invalid workflow_id None: must be a UUID or a str (None only means \"random\" to DotFlow)")
    return workflow_id


def workflow_uuid(workflow_id: Any) -> UUID | None:
    """The UUID that Contexts carry for a workflow id.

    A UUID (or UUID string, in any spelling `canonical_workflow_id` accepts) is itself. A name such
    as "nightly-etl" (letters, digits, '_', '.', '-') gets a UUID derived from it,
    `uuid5(NAMESPACE_URL, "dotflow-workflow:<name>")`, so the same name always gives the same UUID;
    its checkpoint keys use the name itself.
    """
    if workflow_id is None or isinstance(workflow_id, UUID):
        return workflow_id
    if not isinstance(workflow_id, str):
        raise TypeError(
            f"Invalid workflow_id {workflow_id!r}: must be a UUID or a str, not {type(workflow_id).__name__}"
        )
    known = _WORKFLOW_UUIDS.get(workflow_id)  # asked once or more per task: each id is parsed once
    if known is not None:
        return known
    found = _parse_uuid(workflow_id)
    if found is None:
        if not WORKFLOW_NAME.fullmatch(workflow_id):
            raise ValueError(
                f"Invalid workflow_id {workflow_id!r}: use a UUID, or a name of 1-200 letters, digits, "
                "'_', '.', '-' starting with a letter or digit"
            )
        found = uuid5(NAMESPACE_URL, f"dotflow-workflow:{workflow_id}")
    if len(_WORKFLOW_UUIDS) >= _WORKFLOW_UUIDS_KEPT:
        _WORKFLOW_UUIDS.clear()
    _WORKFLOW_UUIDS[workflow_id] = found
    return found


_WORKFLOW_UUIDS: dict[str, UUID] = {}  # workflow id string -> its UUID (UUIDs are immutable)
_WORKFLOW_UUIDS_KEPT = 256


class LazyTime:
    """A datetime attribute kept in `private`, which may hold a time.time() float instead: the float is
    made the datetime datetime.now() would have given at that instant on first read, and kept.

    Taking the time is cheap and making a datetime is not (microseconds, several times per task),
    while most such times are never read.
    """

    def __init__(self, private: str) -> None:
        self.private = private

    @overload
    def __get__(self, owner: None, kind: type) -> LazyTime: ...

    @overload
    def __get__(self, owner: object, kind: type | None = None) -> datetime | None: ...

    def __get__(self, owner: object, kind: type | None = None) -> datetime | None | LazyTime:
        if owner is None:
            return self
        value = getattr(owner, self.private)
        if isinstance(value, float):
            value = datetime.fromtimestamp(value)
            setattr(owner, self.private, value)
        return cast("datetime | None", value)

    def __set__(self, owner: object, value: datetime | None) -> None:
        setattr(owner, self.private, value)


class ContextInstance:
    """Attribute holder kept for compatibility with dotflow 1.0.1 (`Context` is its only subclass)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # When the value was made: a time.time() float until `time` is first read, then the datetime
        # datetime.now() would have given then (made for every task, read far less often).
        self._time: datetime | float | None = None
        self._task_id: str | None = None
        self._workflow_id: UUID | None = None
        self._storage: Any = None


class Context(ContextInstance):
    """A step's value (`storage`) plus when and by which task/workflow it was made.

    Assigning a Context to `storage` unwraps it: the outer Context copies the inner one's
    storage, time and ids, so a Context never directly holds another Context.
    """

    def __init__(self, storage: Any = None, task_id: str | None = "", workflow_id: UUID | str | None = None) -> None:
        # Built several times per task: the common argument types are stored directly, anything
        # else goes through the validating (or unwrapping) property setters.
        if type(storage) is Context:  # unwrapped: its time and ids, unless given explicitly below
            self._storage = storage._storage
            self._time = storage._time
            self._task_id = storage._task_id
            self._workflow_id = storage._workflow_id
            if task_id == "" and workflow_id is None:
                return
        self._time = _now()  # a float until read: see `time`
        if task_id is None or type(task_id) is str:
            self._task_id = task_id
        else:
            self.task_id = task_id
        if workflow_id is None or type(workflow_id) is UUID:
            self._workflow_id = workflow_id
        else:
            self.workflow_id = workflow_id
        if isinstance(storage, Context):
            self.storage = storage
        else:
            self._storage = storage

    time = LazyTime("_time")

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @task_id.setter
    def task_id(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"task_id must be a str or None, not {type(value).__name__}")
        self._task_id = value

    @property
    def workflow_id(self) -> UUID | None:
        return self._workflow_id

    @workflow_id.setter
    def workflow_id(self, value: UUID | str | None) -> None:
        if value is None or isinstance(value, UUID):
            self._workflow_id = value
        elif isinstance(value, str):
            try:
                self._workflow_id = UUID(value)
            except ValueError:
                raise ValueError(f"Invalid workflow_id: '{value}' is not a valid UUID format.") from None
        else:
            raise TypeError(f"workflow_id must be a UUID, a UUID string or None, not {type(value).__name__}")

    @property
    def storage(self) -> Any:
        return self._storage

    @storage.setter
    def storage(self, value: Any) -> None:
        if isinstance(value, Context):
            self._storage = value._storage
            self._time = value._time
            self._task_id = value._task_id
            self._workflow_id = value._workflow_id
        else:
            self._storage = value
