"""The checkpoint document's bytes: the envelope written by hand must be exactly what json writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dotflow.values.codec import UnencodableValueError, dumps
from dotflow.core.context import Context
from dotflow.values.checkpoint_format import decode_document, encode_document


def as_json_would_write(value: Any, ttl: float | None, fingerprint: str | None, revision: str | None, now: float) -> bytes:
    body: dict[str, Any] = {
        "format": "dotflow-checkpoint",
        "version": 1,
        "value": json.loads(dumps(value)),
        "fingerprint": fingerprint,
        "expires_at": None if ttl is None else now + ttl,
    }
    if revision is not None:
        body["revision"] = revision
    return (json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")


@pytest.mark.parametrize("ttl", [None, 60, 0.25, 10**6])
@pytest.mark.parametrize("fingerprint", [None, "", "sha256:ab", 'quote " back \\ slash', "é\u2603\ud800\n\t"])
@pytest.mark.parametrize("revision", [None, "0123456789abcdef" * 2, 'odd "revision"'])
def test_document_bytes_are_what_json_writes(ttl: float | None, fingerprint: str | None, revision: str | None) -> None:
    context = Context(storage={"n": 1, "text": "é"}, task_id="t")
    now = 1_700_000_000.123456
    got = encode_document("k", context, ttl, fingerprint, revision=revision, now=now)
    assert got == as_json_would_write(context, ttl, fingerprint, revision, now)
    decoded, read_fingerprint = decode_document("k", json.loads(got))
    assert decoded.storage == {"n": 1, "text": "é"} and read_fingerprint == fingerprint


def test_a_plain_value_is_wrapped_in_a_context() -> None:
    got = json.loads(encode_document("k", [1, 2], None, None, now=0.0))
    assert got["value"]["$context"]["storage"] == [1, 2]


def test_an_expiry_that_is_not_finite_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="cannot store key 'k': its expiry time is inf"):
        encode_document("k", 1, 60, None, now=math.inf)


def test_an_unencodable_value_names_the_key() -> None:
    with pytest.raises(UnencodableValueError, match="cannot store key 'k'"):
        encode_document("k", {"x": object()}, None, None, now=0.0)


@pytest.mark.parametrize(
    ("ttl", "fingerprint", "revision"),
    [(None, None, None), (30.0, 'fp "quoted" \\ é', "0" * 32), (None, "fp", None)],
)
def test_stored_value_encoding_is_the_value_encoding_a_journal_checksums(
    ttl: float | None, fingerprint: str | None, revision: str | None
) -> None:
    from dotflow.run.journal_config import checkpoint_bytes
    from dotflow.values.checkpoint_format import encode_document, stored_value_encoding

    value = Context(storage={"fingerprint": ',"fingerprint":null', "rows": [1, 2.5, None]})  # the field name inside
    document = encode_document("k", value, ttl, fingerprint, revision=revision, now=1000.0)
    assert stored_value_encoding(document) == checkpoint_bytes(value)


@pytest.mark.parametrize(
    "document",
    [
        b'{"version":1,"format":"dotflow-checkpoint","value":{},"fingerprint":null,"expires_at":null}\n',
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":null,"expires_at":null,"value":{}}\n',
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":null,"expires_at":null}',
        b'{"format":"dotflow-checkpoint","version":1,"value":{}}\n',
        # a fingerprint that is not one JSON string: a bare quote inside, an escaped closing quote, a raw newline
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":"a"b","expires_at":null}\n',
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":"a\\","expires_at":null}\n',
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":"a\nb","expires_at":null}\n',
        b'{"format":"dotflow-checkpoint","version":1,"value":{},"fingerprint":null,"expires_at":null,"revision":"r"x"}\n',
    ],
)
def test_stored_value_encoding_is_none_for_any_other_layout(document: bytes) -> None:
    from dotflow.values.checkpoint_format import stored_value_encoding

    assert stored_value_encoding(document) is None
