"""The checkpoint document every persistent backend stores: one JSON object per key.

Version 1, UTF-8 JSON (ASCII in practice)::

    {"format": "dotflow-checkpoint",
     "version": 1,
     "value": {"$context": {"storage": ..., "task_id": ..., "workflow_id": ..., "time": ...}},
     "fingerprint": "<str>" | null,
     "expires_at": <unix time, float> | null,
     "revision": "<32 hex digits>"}          (optional; written by StorageFile as its version token)

`value` is the whole Context in the encoding of `dotflow.values.codec`, so values round-trip exactly
and nothing read back is ever unpickled or evaluated. Value, fingerprint and expiry travel in one
document and are replaced together by every write, so metadata never goes stale.

Documents written by dotflow 1.0.1 (a JSON array of strings, each ``json.dumps(payload)``) are read
as 1.0.1 read them: see `legacy_context`.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from dotflow.abc.storage import check_post_metadata
from dotflow.values import codec
from dotflow.core.context import Context
from dotflow.core.exception import CorruptCheckpointError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "decode_document",
    "document_expires_at",
    "encode_document",
    "is_document",
    "is_legacy_body",
    "is_number",
    "legacy_context",
    "legacy_failure",
    "parse_document",
    "stored_value_encoding",
]

FORMAT = "dotflow-checkpoint"
FORMAT_VERSION = 1


def encode_document(
    key: str,
    value: Any,
    ttl: float | None,
    fingerprint: str | None,
    *,
    revision: str | None = None,
    now: float | None = None,
) -> bytes:
    """The bytes of a checkpoint document; raises before anything is written if the value cannot be stored.

    An unencodable value raises `codec.UnencodableValueError` (a TypeError naming the key and the type).
    """
    check_post_metadata(ttl, fingerprint)
    context = value if isinstance(value, Context) else Context(storage=value)
    try:
        text = codec.dumps(context)
    except codec.UnencodableValueError as exc:
        raise exc.for_key(key) from exc
    # The envelope is written by hand around the value's JSON (a dict through json.dumps costs more):
    # every part is JSON already (ASCII string escapes, `repr` of a finite float is what json writes).
    expires_at = "null"
    if ttl is not None:
        when = float((time.time() if now is None else now) + ttl)
        if not math.isfinite(when):
            raise ValueError(f"cannot store key {key!r}: its expiry time is {when!r}; check the clock and the ttl")
        expires_at = repr(when)
    return "".join(
        (
            _HEAD,
            text,
            ',"fingerprint":',
            "null" if fingerprint is None else _json_string(fingerprint),
            ',"expires_at":',
            expires_at,
            "}\n" if revision is None else f',"revision":{_json_string(revision)}}}\n',
        )
    ).encode("ascii")


_HEAD = f'{{"format":"{FORMAT}","version":{FORMAT_VERSION},"value":'
_HEAD_BYTES = _HEAD.encode("ascii")
_json_string = json.encoder.encode_basestring_ascii  # (what json.dumps writes a str with, by default)


# What follows the value in a document `encode_document` wrote: these three fields, once each, no more.
# A JSON string as runs of plain characters between escapes (the same strings as `"(?:plain|\\.)*"`, in
# a quarter of the time: resume matches this once per restored checkpoint).
_JSON_STRING = rb'"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*"'
_TAIL = re.compile(
    rb',"fingerprint":(?:null|' + _JSON_STRING + rb'),"expires_at":(?:null|-?[0-9][0-9.eE+-]*)'
    rb'(?:,"revision":' + _JSON_STRING + rb')?\}\n'
)


def stored_value_encoding(document: bytes) -> bytes | None:
    """The value's encoding (`codec.dumps` of its Context) as embedded in a document `encode_document`
    wrote, or None if the document is not laid out exactly so (then encode the decoded value instead).

    Used for checksums only: what it returns is compared with a journal's SHA-256 of a committed
    encoding. A match means these bytes are one complete JSON object, and the envelope around them
    (a fixed head, and a tail of fingerprint, expiry and revision only) holds no second "value" key,
    so the value decoded from this document is the committed one.
    """
    head = _HEAD_BYTES
    if not document.startswith(head):
        return None
    end = document.rfind(b',"fingerprint":')
    if end < len(head) or _TAIL.fullmatch(document, end) is None:
        return None
    return document[len(head) : end]


def is_document(body: Any) -> bool:
    """True if a parsed JSON body is a checkpoint document (of any version)."""
    return type(body) is dict and body.get("format") == FORMAT


def is_legacy_body(body: Any) -> bool:
    """True if a parsed JSON body is dotflow 1.0.1's format: an array of strings (possibly empty)."""
    return type(body) is list and all(type(element) is str for element in body)


def document_expires_at(body: dict[str, Any]) -> float | None:
    expires_at = body.get("expires_at")
    return expires_at if is_number(expires_at) else None


def decode_document(
    key: str, body: dict[str, Any], where: str = "", path: str | None = None
) -> tuple[Context, str | None]:
    """(context, fingerprint) of a parsed checkpoint document.

    A corrupt one raises `CorruptCheckpointError` naming the key; `where` (such as " (file: ...)")
    says where the document was read, and `path` (a file's) is set on the error.
    """

    def corrupt(reason: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(key, reason + where, path=path)

    if body.get("version") != FORMAT_VERSION:
        raise corrupt(f"it has format version {body.get('version')!r}; this dotflow reads version {FORMAT_VERSION}")
    fingerprint = body.get("fingerprint")
    if fingerprint is not None and type(fingerprint) is not str:
        raise corrupt("its fingerprint is not a string")
    expires_at = body.get("expires_at")
    if expires_at is not None and not is_number(expires_at):
        raise corrupt("its expires_at is not a number")
    try:
        context = codec.decode(body.get("value"))
    except ValueError as exc:
        raise corrupt(str(exc)) from exc
    if type(context) is not Context:
        raise corrupt("its value is not a Context")
    return context, fingerprint


def parse_document(key: str, data: str | bytes, where: str = "") -> tuple[Context, str | None]:
    """(context, fingerprint) of a stored checkpoint document's text; `CorruptCheckpointError` if it is not one."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        problem = "it is empty" if not data else "it is not valid JSON"
        raise CorruptCheckpointError(key, f"{problem}{where}") from exc
    if not is_document(body):
        raise CorruptCheckpointError(key, f"it holds a JSON {type(body).__name__}, not a checkpoint document{where}")
    return decode_document(key, body, where)


def legacy_context(body: Any) -> Context:
    """A dotflow 1.0.1 body (JSON array of JSON strings) read exactly as 1.0.1 read it.

    No element or a non-array → empty `Context()`; one element → ``Context(storage=json.loads(e))``
    (the raw string if it does not parse); several → a Context holding one Context per element.
    """
    if type(body) is not list or not body:
        return Context()
    values = [_legacy_value(element) for element in body]
    if len(values) == 1:
        return Context(storage=values[0])
    return Context(storage=[Context(storage=value) for value in values])


def _legacy_value(element: Any) -> Any:
    if not isinstance(element, str):
        return element
    try:
        return json.loads(element)
    except (ValueError, RecursionError):
        return element


def legacy_failure(context: Context) -> bool:
    """1.0.1 wrote null for a failed task (appended, in group/parallel modes): not a checkpoint."""
    storage = context.storage
    if storage is None:
        return True
    return type(storage) is list and all(type(c) is Context and c.storage is None for c in storage)


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)
