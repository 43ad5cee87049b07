"""The JSON encoding of checkpoint values: language-neutral, exact, and never executable.

A value is encoded to a tree of plain JSON values; `dumps` writes that tree as compact JSON text
(keys in their original order, non-ASCII characters as \\u escapes so any str survives a UTF-8
file, NaN and infinities never written bare), and `loads` reads it back.
Nothing is ever unpickled or evaluated: decoding only builds the types listed below.

Native JSON forms (written as is):

    null, true/false, integers, finite floats, strings, arrays (Python list),
    objects (Python dict) whose keys are all strings and none starts with "$".

Integers are plain JSON numbers of any size; a reader in a language whose numbers are doubles needs
a big-integer aware JSON parser to keep integers beyond 2**53 exact.

Tagged forms are JSON objects with exactly one key, the tag, which starts with "$":

    {"$tuple": [...]}                 tuple, items encoded in order
    {"$set": [...]}                   set, and frozenset: items in natural order when they are
    {"$frozenset": [...]}             all strings or all numbers, else by their encoded JSON text
    {"$bytes": "<base64>"}            bytes, and bytearray: standard base64 alphabet, padded
    {"$bytearray": "<base64>"}
    {"$datetime": "<ISO 8601>"}       datetime.isoformat(): naive, or with its UTC offset
    {"$date": "YYYY-MM-DD"}           date
    {"$time": "<ISO 8601>"}           time, naive or with its UTC offset
    {"$timedelta": [d, s, us]}        timedelta(days, seconds, microseconds)
    {"$decimal": "<str>"}             Decimal, via str() (keeps exponent, sign, NaN, Infinity)
    {"$uuid": "<canonical str>"}      UUID
    {"$float": "nan"|"inf"|"-inf"}    the floats JSON cannot hold
    {"$dict": [[k, v], ...]}          a dict with a non-str key or a key starting with "$",
                                      pairs in insertion order (so {1: "a"} keeps its int key and
                                      a user dict can never be mistaken for a tag)
    {"$context": {"storage": <value>, "task_id": str|null,
                  "workflow_id": "<uuid>"|null, "time": "<ISO 8601>"|null}}
                                      a dotflow Context; all four keys are required
    {"$path": "<text>"}               pathlib.Path (the concrete class of this platform),
    {"$pureposixpath": "<text>"}      PurePosixPath and PureWindowsPath: str(path)
    {"$purewindowspath": "<text>"}

Registered types (`register`): the user names a class and a tag, and its values are written as
``{"$<tag>": <payload>}``, the payload in this same encoding (so it may hold any value above,
registered types included). Two kinds need no functions of their own:

    Enum classes                      payload: the member's name, e.g. {"$shop.Color": "RED"}
    dataclasses                       payload: an object of every field's value, by field name;
                                      decoding calls the class with its init fields and sets the
                                      others, so __post_init__ runs as it does for any instance
    any other class                   payload: what `encode(value)` returns; `decode(payload)`
                                      builds the value back (a pydantic model:
                                      register(M, lambda m: m.model_dump(mode="json"), M.model_validate))

Decoding builds only the built-in types above and the registered classes: a document whose tag
no class is registered under (in the process that reads it) raises `DecodeError` naming the tag.

Only the exact types above are accepted: subclasses (namedtuple, IntEnum, str subclasses,
OrderedDict, defaultdict, ...) and every other type raise `UnencodableValueError`, whose message
names the type and where it sits in the value (e.g. ``value['rows'][3]``); a subclass of a registered
class must be registered itself. Datetimes and times must
be naive or carry a plain `datetime.timezone` (a fixed offset, unnamed): zone objects such as
`zoneinfo.ZoneInfo` would come back as a bare offset, so they are refused rather than altered.
The `fold` attribute of a datetime or time is not kept. Shared references are written once per
occurrence and read back as separate objects; a value that contains itself is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import pathlib
import threading
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, NamedTuple, TypeVar
from uuid import UUID

from dotflow.core.context import Context
from dotflow.core.exception import DotFlowError

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "UnencodableValueError",
    "decode",
    "dumps",
    "encode",
    "loads",
    "register",
    "registered_form",
    "registered_tag",
    "unregister",
]

# Nesting limit: deep enough for real data, shallow enough to stay far from Python's recursion limit
# (a tuple costs two JSON levels once written).
MAX_DEPTH = 256

_SEPARATORS = (",", ":")


class UnencodableValueError(DotFlowError, TypeError):
    """A value (or a part of it) has a type the checkpoint encoding cannot store exactly.

    Attributes: `type_name` (the offending type), `path` (where it sits, e.g. ``value['rows'][3]``),
    `reason` (what is wrong) and `key` (the storage key being written, when known).
    """

    def __init__(self, type_name: str, path: str, reason: str = "", key: str | None = None) -> None:
        self.type_name = type_name
        self.path = path
        self.reason = reason or f"type '{type_name}' is not supported by the checkpoint encoding"
        self.key = key
        where = f"cannot store key {key!r}: " if key is not None else "cannot encode "
        shown = path if len(path) <= 200 else f"{path[:100]}...{path[-97:]}"
        super().__init__(f"{where}{shown} ({type_name}): {self.reason}")

    def for_key(self, key: str) -> UnencodableValueError:
        """The same error, with the storage key named in the message."""
        return UnencodableValueError(self.type_name, self.path, self.reason, key=key)


class DecodeError(DotFlowError, ValueError):
    """Text or a JSON tree that is not a valid encoding (unknown tag, malformed tagged form, ...)."""


# --------------------------------------------------------------------------------------------- encode


def encode(value: Any) -> Any:
    """Return the JSON-compatible tree that represents `value` exactly (see the module docstring).

    The tree shares with `value` every list and dict that needs no change (all of a plain JSON value,
    say), so write it out before `value` can change: `dumps` does.
    """
    if _plain(value, 0):
        return value
    try:
        return _Encoder().encode(value, "value", 0)
    except RecursionError:
        raise UnencodableValueError(type(value).__name__, "value", "nested too deeply to encode") from None


def dumps(value: Any) -> str:
    """Encode `value` and write it as compact JSON text (ASCII: any str, even a lone surrogate, survives)."""
    return _JSON_WRITER.encode(encode(value))


# One writer for every call (json.dumps with options builds a new one each time). The tree holds no
# cycle (the encoder refuses them) and no NaN or infinity (they are tagged), so neither is checked again.
_JSON_WRITER = json.JSONEncoder(separators=_SEPARATORS, allow_nan=False, check_circular=False)


# Where a part sits in the value, for error messages only. On the way down the encoder passes cheap
# tuples (parent, step, item); `_where_text` renders them (e.g. "value['rows'][3]") only when a part
# is refused, so encoding a large value builds no path strings.
_Where = Any  # str (the root's name), or tuple[_Where, str, Any]

# Leaves written as they are: no call, no copy (a float needs a finiteness check, so it is not here).
_VERBATIM = frozenset({str, int, bool, type(None)})


class _Encoder:
    def __init__(self) -> None:
        self.active: set[int] = set()  # ids of the containers on the current path (cycle guard)

    def encode(self, value: Any, path: _Where, depth: int) -> Any:
        kind = type(value)
        if kind in _VERBATIM:
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        scalar = _SCALARS.get(kind)
        if scalar is not None:
            return scalar(value, path)
        if kind in (list, tuple, set, frozenset, dict, Context):
            return self._container(value, path, depth)
        registration = _BY_TYPE.get(kind)
        if registration is not None:
            return self._registered(registration, value, path, depth)
        raise _refuse(value, path)

    def _registered(self, registration: _Registration, value: Any, path: _Where, depth: int) -> Any:
        kind = type(value)
        if depth >= MAX_DEPTH:
            raise UnencodableValueError(kind.__name__, _where_text(path), f"nested deeper than {MAX_DEPTH} levels")
        if id(value) in self.active:
            raise UnencodableValueError(
                kind.__name__, _where_text(path), "the value contains itself (recursive reference)"
            )
        try:
            payload = registration.encode(value)
        except Exception as exc:  # the user's encoder: its failure is this value's failure
            raise UnencodableValueError(
                _qualified(kind),
                _where_text(path),
                f"its registered encoder raised {type(exc).__name__}: {exc}",
            ) from exc
        self.active.add(id(value))
        try:
            return {registration.tag: self.encode(payload, (path, "tag", registration.tag), depth + 1)}
        finally:
            self.active.discard(id(value))

    def _container(self, value: Any, path: _Where, depth: int) -> Any:
        kind = type(value)
        if depth >= MAX_DEPTH:
            raise UnencodableValueError(kind.__name__, _where_text(path), f"nested deeper than {MAX_DEPTH} levels")
        if id(value) in self.active:
            raise UnencodableValueError(
                kind.__name__, _where_text(path), "the value contains itself (recursive reference)"
            )
        self.active.add(id(value))
        try:
            depth += 1
            if kind is list:
                return self._items(value, path, depth)
            if kind is tuple:
                items = self._items(value, path, depth)
                return {"$tuple": items if type(items) is list else list(items)}
            if kind is set or kind is frozenset:
                return {f"${kind.__name__}": self._set_items(value, path, depth)}
            if kind is dict:
                return self._dict(value, path, depth)
            return self._context(value, path, depth)
        finally:
            self.active.discard(id(value))

    def _set_items(self, value: set[Any] | frozenset[Any], path: _Where, depth: int) -> list[Any]:
        items = list(value)
        if all(type(x) is str for x in items) or all(type(x) in (int, float) and x == x for x in items):
            return [self.encode(x, (path, "member", i), depth) for i, x in enumerate(sorted(items))]
        encoded = [self.encode(x, (path, "member", i), depth) for i, x in enumerate(items)]
        # Mixed or unorderable items: order by their JSON text, which is deterministic across processes.
        return sorted(encoded, key=lambda e: json.dumps(e, separators=_SEPARATORS))

    # Lists and dicts are copied on change only: while every item encodes to itself, nothing is built,
    # and the container itself is returned. (Loops, not comprehensions: fewer frames per level.)

    def _items(self, value: list[Any] | tuple[Any, ...], path: _Where, depth: int) -> list[Any] | tuple[Any, ...]:
        out: list[Any] | None = None
        for i, item in enumerate(value):
            if type(item) in _VERBATIM:
                if out is not None:
                    out.append(item)
                continue
            encoded = self.encode(item, (path, "item", i), depth)
            if out is None:
                if encoded is item:
                    continue
                out = list(value[:i])
            out.append(encoded)
        return value if out is None else out

    def _dict(self, value: dict[Any, Any], path: _Where, depth: int) -> Any:
        out: dict[str, Any] | None = None
        for k, v in value.items():
            if type(k) is not str or k.startswith("$"):
                return self._tagged_dict(value, path, depth)
            if type(v) in _VERBATIM:
                if out is not None:
                    out[k] = v
                continue
            encoded = self.encode(v, (path, "key", k), depth)
            if out is None:
                if encoded is v:
                    continue
                out = {}
                for done, same in value.items():  # the items before this one, unchanged
                    if done is k:
                        break
                    out[done] = same
            out[k] = encoded
        return value if out is None else out

    def _tagged_dict(self, value: dict[Any, Any], path: _Where, depth: int) -> Any:
        pairs = []
        for i, (k, v) in enumerate(value.items()):
            key = self.encode(k, (path, "dict_key", i), depth)
            pairs.append([key, self.encode(v, (path, "key", k), depth)])
        return {"$dict": pairs}

    def _context(self, value: Context, path: _Where, depth: int) -> Any:
        stamp = value.time
        if stamp is not None and type(stamp) is not datetime:
            raise _refuse(stamp, (path, "attr", "time"), "a Context's time must be a datetime or None")
        workflow_id = value.workflow_id
        storage = value.storage
        return {
            "$context": {
                "storage": storage if _plain(storage, 0) else self.encode(storage, (path, "attr", "storage"), depth),
                "task_id": value.task_id,
                "workflow_id": None if workflow_id is None else _id_text(workflow_id),
                "time": None if stamp is None else _iso_with_plain_offset(stamp, (path, "attr", "time")),
            }
        }


def _plain(value: Any, depth: int) -> bool:
    """True if `value` is plain JSON data, which encodes as itself: None, bool, int, finite float, str, and
    lists and dicts (str keys not starting with "$") of those, at most `_PLAIN_DEPTH` levels deep.

    The common case, checked first: a walk that builds nothing and keeps no cycle guard (a cycle is
    deeper than any depth, so it is left to the encoder, which refuses it by name). Scalars inside a
    container are checked in its loop: one call per container, not per item.
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
        return kind in _VERBATIM or (kind is float and math.isfinite(value))
    if depth >= _PLAIN_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if kind in _VERBATIM:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif not _plain(item, depth + 1):
            return False
    return True


_PLAIN_DEPTH = 64  # deeper plain data takes the encoder's path (well within MAX_DEPTH)

_last_id: tuple[Any, str] = (None, "")


def _id_text(workflow_id: Any) -> str:
    """str(workflow_id), remembered for the last one: every task of a workflow has the same (a UUID's str costs)."""
    global _last_id
    last = _last_id
    if last[0] is workflow_id:
        return last[1]
    text = str(workflow_id)
    _last_id = (workflow_id, text)  # (one tuple, swapped whole: safe between threads)
    return text


_STEP_TEXT: dict[str, Callable[[Any], str]] = {
    "item": lambda i: f"[{i}]",
    "key": lambda k: f"[{_short_repr(k)}]",
    "dict_key": lambda i: f".keys()[{i}]",
    "member": lambda i: f"{{#{i}}}",
    "attr": lambda name: f".{name}",
    "tag": lambda tag: f"<{tag}>",
}


def _where_text(where: _Where) -> str:
    steps: list[str] = []
    while type(where) is tuple:
        where, step, item = where
        steps.append(_STEP_TEXT[step](item))
    return str(where) + "".join(reversed(steps))


def _iso_with_plain_offset(value: datetime | time, path: _Where) -> str:
    tz = value.tzinfo
    # Only an unnamed fixed offset comes back identical from the ISO text.
    if tz is not None and (type(tz) is not timezone or tz.tzname(None) != timezone(tz.utcoffset(None)).tzname(None)):
        raise UnencodableValueError(
            type(value).__name__,
            _where_text(path),
            f"its tzinfo {type(tz).__name__} {tz!s} would not round-trip; "
            "use a datetime.timezone offset or a naive value",
        )
    return value.isoformat()


def _b64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


_SCALARS: dict[type, Callable[[Any, str], Any]] = {
    bytes: lambda v, p: {"$bytes": _b64(v)},
    bytearray: lambda v, p: {"$bytearray": _b64(v)},
    datetime: lambda v, p: {"$datetime": _iso_with_plain_offset(v, p)},
    date: lambda v, p: {"$date": v.isoformat()},
    time: lambda v, p: {"$time": _iso_with_plain_offset(v, p)},
    timedelta: lambda v, p: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v, p: {"$decimal": str(v)},
    UUID: lambda v, p: {"$uuid": str(v)},
    # pathlib: the concrete Path of this platform, and both pure flavours (their text is str(path))
    type(pathlib.Path()): lambda v, p: {"$path": str(v)},
    pathlib.PurePosixPath: lambda v, p: {"$pureposixpath": str(v)},
    pathlib.PureWindowsPath: lambda v, p: {"$purewindowspath": str(v)},
}

_SUPPORTED = (
    "None, bool, int, float, str, list, tuple, set, frozenset, dict, bytes, bytearray, "
    "datetime, date, time, timedelta, Decimal, UUID, pathlib paths, Context, "
    "and the classes registered with dotflow.codec.register"
)


def _qualified(kind: type) -> str:
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _refuse(value: Any, path: _Where, reason: str = "") -> UnencodableValueError:
    kind = type(value)
    name = _qualified(kind)
    if not reason and (isinstance(value, enum.Enum) or _is_dataclass_instance(value)):
        what = "an Enum" if isinstance(value, enum.Enum) else "a dataclass"
        reason = (
            f"it is {what} whose class is not registered; register it once, where it is defined: "
            f"dotflow.codec.register({kind.__name__})"
        )
    if not reason:
        bases = [base.__name__ for base in kind.__mro__[1:] if base in _EXACT_TYPES]
        if bases:
            reason = f"subclasses are not stored (it is a subclass of {bases[0]}); convert it to a plain {bases[0]}"
        else:
            reason = (
                f"the checkpoint encoding supports only these exact types: {_SUPPORTED} "
                f"(dotflow.codec.register({kind.__name__}, encode, decode) adds one)"
            )
    return UnencodableValueError(name, _where_text(path), reason)


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


_EXACT_TYPES = frozenset({bool, int, float, str, list, tuple, set, frozenset, dict, Context, *_SCALARS})


def _short_repr(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------- decode


def loads(text: str | bytes) -> Any:
    """Read JSON text written by `dumps` back into the value it encodes."""
    try:
        tree = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise DecodeError("cannot decode: JSON nested too deeply") from None
    except DecodeError:
        raise
    except ValueError as exc:  # invalid JSON or invalid UTF-8
        raise DecodeError(f"cannot decode: not valid JSON ({exc})") from exc
    return decode(tree)


def decode(obj: Any) -> Any:
    """Rebuild a value from its JSON tree (the inverse of `encode`).

    Raises `DecodeError` (a ValueError) for an unknown "$tag", a malformed tagged form, or a non-JSON node.
    """
    try:
        return _decode(obj)
    except RecursionError:
        raise DecodeError("cannot decode: value nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"cannot decode: {name} is not valid JSON (non-finite floats are written as {{\"$float\": ...}})")


def _decode(obj: Any) -> Any:
    kind = type(obj)
    if obj is None or kind is bool or kind is int or kind is str:
        return obj
    if kind is float:
        if not math.isfinite(obj):
            raise DecodeError("cannot decode: a non-finite float must be written as {\"$float\": ...}")
        return obj
    if kind is list:
        return _items(obj)
    if kind is dict:
        tags = [k for k in obj if k.startswith("$")]
        if not tags:
            result = {}
            for k, v in obj.items():
                result[k] = _decode(v)
            return result
        if len(obj) != 1:
            raise DecodeError(f"cannot decode: an object with the key {tags[0]!r} must have no other key")
        tag = tags[0]
        handler = _TAGS.get(tag)
        if handler is None:
            registration = _BY_TAG.get(tag)
            if registration is None:
                raise DecodeError(
                    f"cannot decode: unknown tag {tag!r} (no type is registered under it in this process; "
                    f"register the class with dotflow.codec.register(..., tag={tag[1:]!r}) before reading)"
                )
            return _decode_registered(registration, obj[tag])
        try:
            return handler(obj[tag])
        except DecodeError:
            raise  # already names the innermost tag
        except _Malformed as exc:
            raise DecodeError(f"cannot decode {tag!r}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise DecodeError(f"cannot decode {tag!r}: {exc}") from exc
    raise DecodeError(f"cannot decode a {kind.__name__}: not a JSON value")


class _Malformed(Exception):
    """A tag's payload has the wrong shape; `_decode` turns it into a ValueError naming the tag."""


def _expect(payload: Any, kind: type, what: str) -> Any:
    if type(payload) is not kind:
        raise _Malformed(f"expected {what}, got {type(payload).__name__}")
    return payload


def _items(payload: Any) -> list[Any]:
    out = []
    for item in _expect(payload, list, "an array"):
        out.append(_decode(item))
    return out


def _hashables(payload: Any) -> list[Any]:
    items = _items(payload)
    for item in items:
        try:
            hash(item)
        except TypeError:
            raise _Malformed(f"item of type {type(item).__name__} is not hashable") from None
    return items


def _b64decode(payload: Any) -> bytes:
    try:
        return base64.b64decode(_expect(payload, str, "a base64 string"), validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise _Malformed(f"invalid base64: {exc}") from None


def _decode_float(payload: Any) -> float:
    names = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
    if payload not in names:
        raise _Malformed(f"expected one of 'nan', 'inf', '-inf', got {payload!r}")
    return names[payload]


def _decode_timedelta(payload: Any) -> timedelta:
    parts = _expect(payload, list, "[days, seconds, microseconds]")
    if len(parts) != 3 or any(type(p) is not int for p in parts):
        raise _Malformed("expected [days, seconds, microseconds] as three integers")
    return timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _decode_decimal(payload: Any) -> Decimal:
    try:
        return Decimal(_expect(payload, str, "a string"))
    except InvalidOperation:
        raise _Malformed(f"invalid decimal {payload!r}") from None


def _decode_dict(payload: Any) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for pair in _expect(payload, list, "an array of [key, value] pairs"):
        if type(pair) is not list or len(pair) != 2:
            raise _Malformed("expected an array of [key, value] pairs")
        key = _decode(pair[0])
        try:
            hash(key)
        except TypeError:
            raise _Malformed(f"key of type {type(key).__name__} is not hashable") from None
        result[key] = _decode(pair[1])
    return result


_CONTEXT_FIELDS = ("storage", "task_id", "workflow_id", "time")


def _decode_context(payload: Any) -> Context:
    fields = _expect(payload, dict, "an object")
    if sorted(fields) != sorted(_CONTEXT_FIELDS):
        raise _Malformed(f"expected exactly the keys {', '.join(_CONTEXT_FIELDS)}, got {', '.join(fields)}")
    for name in ("task_id", "workflow_id", "time"):
        if fields[name] is not None and type(fields[name]) is not str:
            raise _Malformed(f"{name} must be a string or null")
    storage = _decode(fields["storage"])
    if type(storage) is Context:
        raise _Malformed("a Context cannot directly hold another Context")
    context = Context(storage=storage, task_id=fields["task_id"], workflow_id=fields["workflow_id"])
    context.time = None if fields["time"] is None else datetime.fromisoformat(fields["time"])
    return context


def _decode_registered(registration: _Registration, payload: Any) -> Any:
    value = _decode(payload)
    try:
        return registration.decode(value)
    except DecodeError:
        raise
    except Exception as exc:  # the user's decoder (or the built-in one of an Enum or dataclass)
        detail = str(exc) if isinstance(exc, _Malformed) else f"{type(exc).__name__}: {exc}"
        raise DecodeError(f"cannot decode {registration.tag!r} ({_qualified(registration.cls)}): {detail}") from exc


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$tuple": lambda p: tuple(_items(p)),
    "$set": lambda p: set(_hashables(p)),
    "$frozenset": lambda p: frozenset(_hashables(p)),
    "$bytes": _b64decode,
    "$bytearray": lambda p: bytearray(_b64decode(p)),
    "$datetime": lambda p: datetime.fromisoformat(_expect(p, str, "an ISO 8601 string")),
    "$date": lambda p: date.fromisoformat(_expect(p, str, "an ISO 8601 string")),
    "$time": lambda p: time.fromisoformat(_expect(p, str, "an ISO 8601 string")),
    "$timedelta": _decode_timedelta,
    "$decimal": _decode_decimal,
    "$uuid": lambda p: UUID(_expect(p, str, "a UUID string")),
    "$float": _decode_float,
    "$dict": _decode_dict,
    "$context": _decode_context,
    "$path": lambda p: pathlib.Path(_expect(p, str, "a path string")),
    "$pureposixpath": lambda p: pathlib.PurePosixPath(_expect(p, str, "a path string")),
    "$purewindowspath": lambda p: pathlib.PureWindowsPath(_expect(p, str, "a path string")),
}

# ------------------------------------------------------------------------------------------ registry


class _Registration(NamedTuple):
    cls: type
    tag: str  # as written in documents, "$" included
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


_BY_TYPE: dict[type, _Registration] = {}
_BY_TAG: dict[str, _Registration] = {}
_REGISTRY_LOCK = threading.Lock()
_T = TypeVar("_T", bound=type)


def register(
    cls: _T,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    *,
    tag: str | None = None,
) -> _T:
    """Let checkpoints hold values of `cls`: they are written as ``{"$<tag>": encode(value)}``.

    `encode(value)` returns a value this encoding can hold (plain JSON data, or any supported or
    registered type); `decode(payload)` gets that payload back, decoded, and returns the value.
    An Enum class or a dataclass needs neither function (see the module docstring). `tag` defaults to
    ``"<module>.<qualified name>"``; documents name it, so keep it stable once checkpoints exist.
    Only `cls` itself is registered, not its subclasses. Registering a class again replaces its
    registration. Returns `cls`, so ``@register`` works on an Enum or a dataclass.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register() needs a class, got {type(cls).__name__} {cls!r}")
    if cls in _EXACT_TYPES or cls is Context or issubclass(cls, Context):
        raise ValueError(f"{_qualified(cls)} has a built-in form in the checkpoint encoding; it cannot be registered")
    if (encode is None) != (decode is None):
        raise TypeError(f"register({cls.__name__}, ...) needs both encode and decode, or neither")
    if encode is None or decode is None:
        if issubclass(cls, enum.Enum):
            encode, decode = _enum_functions(cls)
        elif dataclasses.is_dataclass(cls):
            encode, decode = _dataclass_functions(cls)
        else:
            raise TypeError(
                f"register({cls.__name__}) needs encode and decode functions "
                "(only Enum classes and dataclasses have built-in forms)"
            )
    if not callable(encode) or not callable(decode):
        raise TypeError(f"register({cls.__name__}, ...): encode and decode must be callable")
    name = f"{cls.__module__}.{cls.__qualname__}" if tag is None else tag
    if type(name) is not str or not name or name.startswith("$") or not name.isprintable() or name != name.strip():
        raise ValueError(f"invalid tag {name!r}: a non-empty printable string, not starting with '$' or a space")
    written = "$" + name
    if written in _TAGS:
        raise ValueError(f"the tag {name!r} is a built-in tag of the checkpoint encoding; choose another")
    with _REGISTRY_LOCK:
        taken = _BY_TAG.get(written)
        if taken is not None and taken.cls is not cls:
            raise ValueError(f"the tag {name!r} is already registered for {_qualified(taken.cls)}")
        previous = _BY_TYPE.get(cls)
        if previous is not None:
            del _BY_TAG[previous.tag]
        registration = _Registration(cls, written, encode, decode)
        _BY_TYPE[cls] = registration
        _BY_TAG[written] = registration
    return cls


def unregister(cls: type) -> None:
    """Forget the registration of `cls` (a KeyError if it has none)."""
    with _REGISTRY_LOCK:
        registration = _BY_TYPE.pop(cls, None)
        if registration is None:
            raise KeyError(f"{_qualified(cls) if isinstance(cls, type) else cls!r} is not registered")
        del _BY_TAG[registration.tag]


def registered_tag(cls: type) -> str | None:
    """The tag `cls` is registered under (without the "$"), or None."""
    registration = _BY_TYPE.get(cls)
    return None if registration is None else registration.tag[1:]


def registered_form(value: Any) -> tuple[str, Any] | None:
    """(tag, payload before encoding) of a value of a registered class, else None (for fingerprints)."""
    registration = _BY_TYPE.get(type(value))
    if registration is None:
        return None
    return registration.tag, registration.encode(value)


def _enum_functions(cls: type[enum.Enum]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    def decode_member(name: Any) -> Any:
        if type(name) is not str:
            raise _Malformed(f"expected a member name (a string), got {type(name).__name__}")
        try:
            return cls[name]
        except KeyError:
            raise _Malformed(f"{cls.__name__} has no member named {name!r}") from None

    return (lambda member: member.name), decode_member


def _dataclass_functions(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    def encode_fields(value: Any) -> dict[str, Any]:
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}

    def decode_fields(payload: Any) -> Any:
        fields = dataclasses.fields(cls)
        names = [field.name for field in fields]
        if type(payload) is not dict or sorted(payload) != sorted(names):
            got = ", ".join(payload) if type(payload) is dict else type(payload).__name__
            raise _Malformed(f"expected the fields {', '.join(names)}, got {got}")
        value = cls(**{field.name: payload[field.name] for field in fields if field.init})
        for field in fields:
            if not field.init:
                object.__setattr__(value, field.name, payload[field.name])  # frozen dataclasses too
        return value

    return encode_fields, decode_fields
