"""Input fingerprints: a digest of a workflow's inputs, committed with every checkpoint.

On resume, a checkpoint whose fingerprint differs from the current one was computed from other
input; `on_input_change` decides what happens (reuse it, reset the workflow, or raise).

A fingerprint is canonical: the same inputs give the same digest in every process, whatever
PYTHONHASHSEED, memory addresses or `sys.set_int_max_str_digits` say.

- Plain JSON inputs (exactly None, bool, int, float, str, list, and dict with str keys) hash as
  dotflow 1.0.1 hashed them: SHA-256 of ``json.dumps(inputs, sort_keys=True)``.
- Other inputs hash a canonical JSON tree, prefixed so that it never equals a plain JSON text:
  tuples, sets and frozensets (items sorted by their canonical text), dicts with other keys
  (pairs sorted), bytes, datetimes, dates, times, timedeltas, Decimal and UUID (in the checkpoint
  encoding of `dotflow.values.codec`), pathlib paths and values of the classes registered with
  `dotflow.codec.register` (their tagged form in that encoding, ``{"$<tag>": <payload>}``, the
  payload made canonical in turn), a Context (its value only: its ids and time change per run),
  enum members (type and name), dataclass instances (type and fields) and subclasses of the
  built-in types above (type and built-in value). Enums and dataclasses keep these forms whether or
  not their class is registered (the same information as the codec's form), so registering a class
  never changes the fingerprint of an input that had one.
  Integers of 600 digits or more are hashed in hexadecimal, so the digest never depends on the
  process's limit on int-to-decimal conversion (4300 digits by default, as low as 640).
- Anything else (an object whose only description is its repr, which can hold a set's
  hash-dependent order or an address), a value that contains itself and nesting deeper than
  `MAX_DEPTH` raise `UnfingerprintableInputError` naming where the value sits. Pass
  ``fingerprint=`` to `DotFlow.start` to name such input yourself.

`FP_KEY_SUFFIX`, `fp_key`, `read_fingerprint` and `write_fingerprint` are dotflow 1.0.1's helpers
for a separate fingerprint key; the engine no longer uses that key (the fingerprint travels in each
checkpoint) but they are kept for code that calls them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Sequence
from uuid import UUID

from dotflow.values import codec
from dotflow.core.context import Context

if TYPE_CHECKING:
    from dotflow.abc.storage import Storage
    from dotflow.core.task import Task

__all__ = [
    "FP_KEY_SUFFIX",
    "MAX_DEPTH",
    "UnfingerprintableInputError",
    "fingerprint_of",
    "fp_key",
    "input_fingerprint",
    "read_fingerprint",
    "write_fingerprint",
]

FP_KEY_SUFFIX = "-_input_fp"
MAX_DEPTH = 256
# Below the lowest limit `sys.set_int_max_str_digits` accepts (640 digits): from here on, hex.
_HEX_FROM = 10**600
_CANONICAL_PREFIX = "dotflow-fingerprint-1:"
_SEPARATORS = (",", ":")
_ENCODED_SCALARS = (
    bytes, bytearray, datetime, date, time, timedelta, Decimal, UUID, type(Path()), PurePosixPath, PureWindowsPath
)
# Built-in types whose subclasses are described by their type and their built-in value.
_BUILTIN_BASES: tuple[type, ...] = (int, float, str, bytes, list, tuple, dict, set, frozenset)
logger = logging.getLogger("dotflow")


class UnfingerprintableInputError(TypeError, ValueError):
    """An input cannot be fingerprinted canonically. Attributes: `path` (where it sits), `type_name`."""

    def __init__(self, path: str, type_name: str, reason: str) -> None:
        self.path = path
        self.type_name = type_name
        super().__init__(
            f"cannot fingerprint {path} ({type_name}): {reason}; "
            "pass fingerprint=... to start() to name this input yourself"
        )


def fingerprint_of(payloads: Sequence[Any], *, names: Sequence[str] | None = None) -> str:
    """The canonical SHA-256 hex digest of `payloads` (see the module docstring).

    `names` label each payload in error messages (default ``value[<i>]``).
    """
    walker = _Canonical()
    tree: list[Any] = []
    try:
        for index, value in enumerate(payloads):
            if value is None or type(value) is str:  # the usual input (a task without one): no label needed
                tree.append(value)
                continue
            label = names[index] if names is not None else f"value[{index}]"  # made only when it may be used
            tree.append(walker.tree(value, label, 0))
    except UnfingerprintableInputError:
        raise
    except RecursionError:
        raise UnfingerprintableInputError("the inputs", "object", "nested too deeply") from None
    except Exception as exc:  # a user type whose fields, iteration or conversion raised
        reason = f"reading it raised {type(exc).__name__}: {exc}"
        raise UnfingerprintableInputError(walker.path, walker.type_name, reason) from exc
    if walker.plain:
        text = json.dumps(list(payloads), sort_keys=True)  # dotflow 1.0.1's digest
    else:
        text = _CANONICAL_PREFIX + _text(tree)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_fingerprint(tasks: Sequence[Task], explicit: object = None, *, required: bool = True) -> str | None:
    """The fingerprint of a run: `explicit` as a str if given, else that of the tasks' initial contexts.

    When the inputs cannot be fingerprinted, raises `UnfingerprintableInputError` if `required`
    (resume compares fingerprints), else returns None: checkpoints are then written without one.
    """
    if explicit is not None:
        return str(explicit)
    payloads = [task.initial_storage() for task in tasks]
    try:
        try:
            return fingerprint_of(payloads)
        except UnfingerprintableInputError:  # again, to name the task in the message
            return fingerprint_of(payloads, names=[f"initial_context of task {task.task_id!r}" for task in tasks])
    except UnfingerprintableInputError as error:
        if required:
            raise
        logger.debug("checkpoints are written without an input fingerprint: %s", error)
        return None


class _Canonical:
    """Builds the canonical JSON tree of a value; `plain` stays True while it is plain JSON."""

    def __init__(self) -> None:
        self.plain = True
        self.active: set[int] = set()  # ids of the containers on the current path (cycle guard)
        self.path = "the inputs"
        self.type_name = "object"

    def tree(self, value: Any, path: str, depth: int) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        self.path, self.type_name = path, _type_name(kind)  # where an unexpected error would come from
        if kind is int:
            if abs(value) < _HEX_FROM:
                return value
            self.plain = False
            return {"$int": hex(value)}
        if kind is float:
            if math.isfinite(value):
                return value
            self.plain = False
            return {"$float": repr(value)}
        if kind in (list, tuple, dict, set, frozenset, Context) or _is_dataclass_instance(value):
            if depth >= MAX_DEPTH:
                raise UnfingerprintableInputError(path, _type_name(kind), f"nested deeper than {MAX_DEPTH} levels")
            if id(value) in self.active:
                raise UnfingerprintableInputError(path, _type_name(kind), "the value contains itself")
            self.active.add(id(value))
            try:
                return self._contents(value, kind, path, depth + 1)
            finally:
                self.active.discard(id(value))
        self.plain = False
        if kind in _ENCODED_SCALARS:
            try:
                return codec.encode(value)
            except codec.UnencodableValueError as exc:
                raise UnfingerprintableInputError(path, kind.__name__, exc.reason) from None
        if isinstance(value, Enum):
            return {"$enum": _type_name(kind), "name": value.name}
        registered = codec.registered_form(value)
        if registered is not None:
            if depth >= MAX_DEPTH:
                raise UnfingerprintableInputError(path, _type_name(kind), f"nested deeper than {MAX_DEPTH} levels")
            if id(value) in self.active:
                raise UnfingerprintableInputError(path, _type_name(kind), "the value contains itself")
            tag, payload = registered
            self.active.add(id(value))
            try:
                return {tag: self.tree(payload, f"{path}<{tag}>", depth + 1)}
            finally:
                self.active.discard(id(value))
        base = next((b for b in _BUILTIN_BASES if isinstance(value, b)), None)
        if base is not None and not isinstance(value, type):
            return {"$instance": _type_name(kind), "value": self.tree(base(value), path, depth)}
        raise UnfingerprintableInputError(
            path,
            _type_name(kind),
            "only JSON values, tuples, sets, bytes, dates and times, Decimal, UUID, paths, Context, enums, "
            "dataclasses, subclasses of built-in types and classes registered with dotflow.codec.register "
            "have a canonical form",
        )

    def _contents(self, value: Any, kind: type, path: str, depth: int) -> Any:
        # Plain loops, not comprehensions: two stack frames per level keep MAX_DEPTH within reach.
        if kind is list or kind is tuple:
            items = []
            for i, item in enumerate(value):
                items.append(self.tree(item, f"{path}[{i}]", depth))
            if kind is list:
                return items
            self.plain = False
            return {"$tuple": items}
        if kind is dict:
            return self._dict(value, path, depth)
        self.plain = False
        if kind is set or kind is frozenset:
            items = []
            for i, item in enumerate(value):
                items.append(self.tree(item, f"{path}{{#{i}}}", depth))
            return {f"${kind.__name__}": sorted(items, key=_text)}  # hash order never leaks in
        if kind is Context:
            return {"$context": self.tree(value.storage, f"{path}.storage", depth)}
        fields = {}
        for field in dataclasses.fields(value):
            fields[field.name] = self.tree(getattr(value, field.name), f"{path}.{field.name}", depth)
        return {"$dataclass": _type_name(kind), "fields": fields}

    def _dict(self, value: dict[Any, Any], path: str, depth: int) -> Any:
        pairs = []
        for i, (k, v) in enumerate(value.items()):
            key = k if type(k) is str else self.tree(k, f"{path}.keys()[{i}]", depth)
            pairs.append([key, self.tree(v, f"{path}[{k!r}]", depth)])
        if all(type(k) is str and not k.startswith("$") for k in value):
            return dict(pairs)
        self.plain = False  # other keys, or a "$" key that could pass for a tag: sorted pairs
        return {"$dict": sorted(pairs, key=_text)}


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _type_name(kind: type) -> str:
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _text(tree: Any) -> str:
    return json.dumps(tree, sort_keys=True, separators=_SEPARATORS, ensure_ascii=True, allow_nan=False)


# -- dotflow 1.0.1's separate fingerprint key (kept for callers; the engine does not use it) --


def fp_key(workflow_id: object) -> str:
    """The key dotflow 1.0.1 kept a workflow's fingerprint under: ``<workflow_id>-_input_fp``."""
    return f"{workflow_id}{FP_KEY_SUFFIX}"


def read_fingerprint(storage: Storage, workflow_id: object) -> str | None:
    value = storage.get(key=fp_key(workflow_id)).storage
    return value if isinstance(value, str) else None


def write_fingerprint(storage: Storage, workflow_id: object, fingerprint: str) -> None:
    storage.post(key=fp_key(workflow_id), context=Context(storage=fingerprint))
