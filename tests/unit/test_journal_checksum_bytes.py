"""The journal's checksum bytes, and the codec's fast path for plain data behind them: plain data is
written as it is, without the encoder's walk, and must give exactly the bytes the encoder gives."""

from __future__ import annotations

import enum
import random
from collections import OrderedDict
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from unittest import mock
from uuid import UUID

import pytest

from dotflow.values import codec
from dotflow.values.codec import UnencodableValueError
from dotflow.core.context import Context
from dotflow.run.journal_config import checkpoint_bytes


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class NamedZone(tzinfo):
    def utcoffset(self, moment: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def tzname(self, moment: datetime | None) -> str:
        return "CET"

    def dst(self, moment: datetime | None) -> timedelta:
        return timedelta(0)


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


SAMPLES: list[Any] = [
    None,
    0,
    -1,
    10**40,
    True,
    False,
    1.5,
    -0.0,
    1e300,
    float("nan"),
    float("inf"),
    "",
    "é\u2028\ud800 \"quoted\" \\",
    [],
    {},
    [1, "a", None, [True, {"k": 2.5}]],
    {"rows": list(range(20)), "from": "x" * 20},
    {"$tuple": [1]},
    {"a": {"$set": []}},
    {1: "int key"},
    {"ok": (1, 2)},
    {1, 2},
    b"bytes",
    Decimal("1.10"),
    UUID(int=7),
    datetime(2026, 12, 1, 10, 0),
    [Colour.RED],
    [Text("sub")],
    OrderedDict(a=1),
    nested(63),
    nested(64),
    nested(200),
    Context(storage={"inner": [1, 2]}, task_id="0-extract"),
    [Context(storage=1)],
]


def encoder_bytes(context: Context) -> bytes:
    """What the encoder alone writes: the codec with its plain-data fast path switched off."""
    with mock.patch.object(codec, "_plain", lambda value, depth: False):
        return codec.dumps(context).encode("ascii")


def stamped(storage: Any, **fields: Any) -> Context:
    context = Context(storage=storage, task_id=fields.get("task_id", "1-load"), workflow_id=fields.get("workflow_id"))
    context.time = fields.get("time", datetime(2026, 12, 1, 20, 0, 0, 123456))
    return context


@pytest.mark.parametrize("storage", SAMPLES, ids=range(len(SAMPLES)))
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"time": None, "task_id": None},
        {"time": datetime(2026, 12, 1, tzinfo=timezone.utc), "workflow_id": UUID(int=3)},
        {"time": datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=2)))},
        {"time": datetime(2026, 12, 1, tzinfo=NamedZone())},
    ],
)
def test_the_same_bytes_as_the_encoder(storage: Any, fields: dict[str, Any]) -> None:
    context = stamped(storage, **fields)
    try:
        expected = encoder_bytes(context)
    except UnencodableValueError as refused:
        with pytest.raises(UnencodableValueError) as raised:
            checkpoint_bytes(context)
        assert str(raised.value) == str(refused)
        return
    assert checkpoint_bytes(context) == expected


def test_a_bare_value_is_checksummed_as_its_context() -> None:
    value = {"rows": [1, 2]}
    produced = checkpoint_bytes(value)
    assert produced.startswith(b'{"$context":{"storage":{"rows":[1,2]},"task_id":"","workflow_id":null,"time":"')


def test_random_plain_and_tagged_values_match_the_encoder() -> None:
    rng = random.Random(7)
    leaves = [None, True, 3, -2**70, 2.25, float("nan"), "t", "$x", "ü", b"b", (1,), Decimal(1), Colour.RED]

    def make(depth: int) -> Any:
        roll = rng.random()
        if depth > 4 or roll < 0.4:
            return rng.choice(leaves)
        if roll < 0.7:
            return [make(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["a", "b", "$c", 1] if rng.random() < 0.2 else ["a", "b", "c", "d"]
        return {rng.choice(keys): make(depth + 1) for _ in range(rng.randint(0, 4))}

    compared = 0
    for _ in range(400):
        context = stamped(make(0))
        try:
            expected = encoder_bytes(context)
        except UnencodableValueError:
            continue
        assert checkpoint_bytes(context) == expected
        compared += 1
    assert compared > 200


def test_a_value_that_contains_itself_is_refused_as_by_the_codec() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(UnencodableValueError, match="contains itself"):
        checkpoint_bytes(loop)
