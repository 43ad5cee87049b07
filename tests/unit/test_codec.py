from __future__ import annotations

import collections
import copy
import enum
import json
import math
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from dotflow.values import codec
from dotflow.values.codec import UnencodableValueError
from dotflow.core.context import Context

WF = UUID("0b7e6b1e-5c4c-4e0c-9d5e-2f4f5f6a7b8c")


def exact(got: Any, want: Any) -> None:
    """Equal and of exactly the same types, all the way down (sets and dict keys included)."""
    assert type(got) is type(want), (got, want)
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            exact(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for (gk, gv), (wk, wv) in zip(got.items(), want.items()):
            exact(gk, wk)
            exact(gv, wv)
    elif isinstance(want, (set, frozenset)):
        assert got == want
        for w in want:
            exact(next(g for g in got if g == w), w)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want
        if isinstance(want, (datetime, time)):
            assert got.utcoffset() == want.utcoffset()


def round_trip(value: Any) -> Any:
    text = codec.dumps(value)
    json.loads(text)  # plain JSON, readable by any parser
    return codec.loads(text)


# ------------------------------------------------------------------------------ documented forms

@pytest.mark.parametrize(
    ("value", "form"),
    [
        (None, None),
        (True, True),
        (7, 7),
        (2.5, 2.5),
        ("text", "text"),
        ([1, "a"], [1, "a"]),
        ({"a": 1}, {"a": 1}),
        ((1, 2), {"$tuple": [1, 2]}),
        ({3, 1, 2}, {"$set": [1, 2, 3]}),
        (frozenset({"b", "a"}), {"$frozenset": ["a", "b"]}),
        (b"\x00\xff", {"$bytes": "AP8="}),
        (bytearray(b"hi"), {"$bytearray": "aGk="}),
        (datetime(2024, 1, 2, 3, 4, 5, 6), {"$datetime": "2024-01-02T03:04:05.000006"}),
        (datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=-3))), {"$datetime": "2024-01-02T00:00:00-03:00"}),
        (date(2020, 2, 29), {"$date": "2020-02-29"}),
        (time(1, 2, 3), {"$time": "01:02:03"}),
        (timedelta(days=-1, seconds=5, microseconds=7), {"$timedelta": [-1, 5, 7]}),
        (Decimal("1.10"), {"$decimal": "1.10"}),
        (UUID("12345678-1234-5678-1234-567812345678"), {"$uuid": "12345678-1234-5678-1234-567812345678"}),
        (math.inf, {"$float": "inf"}),
        (-math.inf, {"$float": "-inf"}),
        ({1: "a"}, {"$dict": [[1, "a"]]}),
        ({"$tuple": [1]}, {"$dict": [["$tuple", [1]]]}),
    ],
)
def test_encoded_form_is_the_documented_one(value: Any, form: Any) -> None:
    assert codec.encode(value) == form
    exact(codec.decode(form), value)


def test_nan_is_tagged_and_dumps_never_writes_bare_nan() -> None:
    assert codec.encode(math.nan) == {"$float": "nan"}
    text = codec.dumps([math.nan, math.inf, -math.inf])
    assert "NaN" not in text and "Infinity" not in text
    got = codec.loads(text)
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf


def test_loads_refuses_bare_nan_and_infinity() -> None:
    for text in ("NaN", "[Infinity]", "-Infinity"):
        with pytest.raises(ValueError):
            codec.loads(text)


def test_dumps_is_compact_and_keeps_key_order() -> None:
    assert codec.dumps({"b": 1, "a": [1, 2]}) == '{"b":1,"a":[1,2]}'


# ------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize(
    "value",
    [
        None,
        False,
        0,
        -(2**100),
        -0.0,
        1e-310,
        "",
        "é\u2603\ud800",  # non-ASCII and a lone surrogate
        (),
        (1, (2, (3,))),
        set(),
        {1, "x", (1, 2), None},
        frozenset({frozenset({1}), frozenset()}),
        b"",
        bytearray(b"\x00\x01"),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(2024, 2, 29, 12, tzinfo=timezone.utc),
        datetime(2024, 2, 29, 12, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15))),
        time(23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-8))),
        timedelta(0),
        timedelta(days=10**6, microseconds=1),
        Decimal("-0"),
        Decimal("1E+5"),
        Decimal("Infinity"),
        Decimal("3.14159265358979323846264338327950288419716939937510"),
        UUID(int=0),
        {True: "bool key", 1.5: "float key", None: "none key", (1, "a"): "tuple key"},
        {"$set": 1, "plain": 2},
        {"a": {"$date": "2020-01-01"}},
        [{"rows": [(1, b"x"), {2: {Decimal("1.0"): frozenset({date(2000, 1, 1)})}}]}],
    ],
)
def test_values_round_trip_exactly(value: Any) -> None:
    exact(round_trip(value), value)


def test_dict_insertion_order_is_kept_for_both_dict_forms() -> None:
    plain = {"z": 1, "a": 2, "m": 3}
    tagged = {3: "c", 1: "a", 2: "b"}
    assert list(round_trip(plain)) == ["z", "a", "m"]
    assert list(round_trip(tagged)) == [3, 1, 2]


def test_sets_are_written_in_a_deterministic_order() -> None:
    assert codec.encode({"b", "c", "a"}) == {"$set": ["a", "b", "c"]}
    assert codec.encode({10, 2, 1.5}) == {"$set": [1.5, 2, 10]}
    # Mixed items are ordered by their JSON text, whatever the hash order of this process.
    words = [f"w{i}" for i in range(10)]
    mixed = {None, 1, (2, "b"), b"x", *words}
    expected = [*words, 1, None, {"$bytes": "eA=="}, {"$tuple": [2, "b"]}]
    assert codec.encode(mixed) == {"$set": expected}
    assert codec.encode(frozenset(reversed(list(mixed)))) == {"$frozenset": expected}


def test_dumps_writes_ascii_so_any_str_survives_a_utf8_file() -> None:
    text = codec.dumps(["é", "\u2603", "\ud800"])
    assert text.isascii()
    assert codec.loads(text.encode("utf-8")) == ["é", "\u2603", "\ud800"]


def test_context_round_trips_with_ids_time_and_sub_contexts() -> None:
    inner_a = Context(storage=1, task_id="t.a")
    inner_b = Context(storage=(2,), task_id="t.b", workflow_id=WF)
    outer = Context(storage=[inner_a, inner_b], task_id="", workflow_id=None)
    outer.workflow_id = WF
    got = round_trip(outer)
    assert type(got) is Context
    assert got.task_id == "" and got.workflow_id == WF and got.time == outer.time
    assert [type(c) for c in got.storage] == [Context, Context]
    assert [(c.storage, c.task_id, c.workflow_id) for c in got.storage] == [(1, "t.a", None), ((2,), "t.b", WF)]
    assert got.storage[0].time == inner_a.time


def test_context_with_none_ids_and_time_round_trips() -> None:
    context = Context(storage=None, task_id=None)
    context.time = None
    form = codec.encode(context)
    assert form == {"$context": {"storage": None, "task_id": None, "workflow_id": None, "time": None}}
    got = codec.decode(form)
    assert got.storage is None and got.task_id is None and got.workflow_id is None and got.time is None


# -------------------------------------------------------------------------------------- refusals

Point = collections.namedtuple("Point", "x y")


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Named(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "X"


class SubContext(Context):
    pass


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        ({"rows": [0, 1, 2, Point(1, 2)]}, "Point", "value['rows'][3]"),
        ([object()], "object", "value[0]"),
        ({"f": lambda: 1}, "function", "value['f']"),
        ((Color.RED,), "Color", "value[0]"),
        ({"n": Name("x")}, "Name", "value['n']"),
        (collections.OrderedDict(a=1), "OrderedDict", "value"),
        (collections.defaultdict(list), "defaultdict", "value"),
        ({"when": datetime(2024, 1, 1, tzinfo=Named())}, "datetime", "value['when']"),
        ({"when": datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1), "CET"))}, "datetime", "value['when']"),
        (1 + 2j, "complex", "value"),
        (range(3), "range", "value"),
        (memoryview(b"x"), "memoryview", "value"),
        (Context(storage=[1, {2: object()}]), "object", "value.storage[1][2]"),
        (SubContext(storage=1), "SubContext", "value"),
        ({(1, object()): "v"}, "object", "value.keys()[0][1]"),
    ],
)
def test_unsupported_types_are_refused_with_type_and_path(value: Any, type_name: str, path: str) -> None:
    with pytest.raises(UnencodableValueError) as info:
        codec.encode(value)
    error = info.value
    assert isinstance(error, TypeError)
    assert error.type_name.endswith(type_name)
    assert error.path == path
    assert type_name in str(error) and path in str(error)


def test_subclass_refusal_says_what_to_convert_to() -> None:
    with pytest.raises(UnencodableValueError, match="subclass of tuple"):
        codec.encode(Point(1, 2))


def test_a_context_time_that_is_not_a_datetime_is_refused() -> None:
    context = Context(storage=1)
    context.time = "yesterday"  # type: ignore[assignment]
    with pytest.raises(UnencodableValueError) as info:
        codec.encode(context)
    assert info.value.path == "value.time"


def test_for_key_names_the_key() -> None:
    with pytest.raises(UnencodableValueError) as info:
        codec.encode({"x": object()})
    error = info.value.for_key("wf-1-a.json")
    assert isinstance(error, TypeError)
    assert "'wf-1-a.json'" in str(error) and "object" in str(error) and "value['x']" in str(error)
    assert (error.key, error.type_name, error.path) == ("wf-1-a.json", "object", "value['x']")


def test_self_referencing_values_are_refused_not_recursion_error() -> None:
    items: list[Any] = [1]
    items.append(items)
    mapping: dict[str, Any] = {}
    mapping["self"] = [mapping]
    for value, path in ((items, "value[1]"), (mapping, "value['self'][0]")):
        with pytest.raises(UnencodableValueError, match="contains itself") as info:
            codec.encode(value)
        assert info.value.path == path


def test_encoding_copies_only_what_changes_and_never_alters_the_value() -> None:
    plain = {"rows": [{"id": 1, "ok": True, "score": 0.5}, None, "x"], "n": 2}
    assert codec.encode(plain) is plain  # nothing to change: nothing built
    mixed = {"a": 1, "rows": [1, 2, (3, float("nan"))], "plain": [4, 5], "z": {"$not a tag": 1}}
    snapshot = copy.deepcopy(mixed)
    tree = codec.encode(mixed)
    assert tree == {
        "a": 1,
        "rows": [1, 2, {"$tuple": [3, {"$float": "nan"}]}],
        "plain": [4, 5],
        "z": {"$dict": [["$not a tag", 1]]},
    }
    assert list(tree) == ["a", "rows", "plain", "z"]  # order kept around the changed items
    assert tree["plain"] is mixed["plain"] and tree is not mixed and tree["rows"] is not mixed["rows"]
    assert repr(mixed) == repr(snapshot)  # (repr: nan != nan)
    exact(round_trip(mixed["rows"]), mixed["rows"])


def test_shared_but_not_recursive_references_are_fine() -> None:
    shared = [1, 2]
    assert round_trip([shared, shared]) == [[1, 2], [1, 2]]


def test_nesting_limit() -> None:
    value: Any = 1
    for _ in range(codec.MAX_DEPTH):
        value = (value,)
    exact(round_trip(value), value)
    for _ in range(2000):
        value = [value]
    with pytest.raises(UnencodableValueError, match="nested deeper"):
        codec.encode(value)


# ---------------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"$pickle": "gASV"}', "'$pickle'"),
        ('[{"$tuple": [{"$eval": "1+1"}]}]', "'$eval'"),
        ('{"$tuple": [1], "other": 2}', "'$tuple'"),
        ('{"$tuple": 1}', "'$tuple'"),
        ('{"$set": [[1]]}', "'$set'"),
        ('{"$bytes": "not base64!"}', "'$bytes'"),
        ('{"$datetime": "yesterday"}', "'$datetime'"),
        ('{"$timedelta": [1, 2]}', "'$timedelta'"),
        ('{"$decimal": "abc"}', "'$decimal'"),
        ('{"$uuid": "xyz"}', "'$uuid'"),
        ('{"$float": "big"}', "'$float'"),
        ('{"$dict": [[1]]}', "'$dict'"),
        ('{"$dict": [[[1], 2]]}', "'$dict'"),
        ('{"$context": {"storage": 1}}', "'$context'"),
        ('{"$context": {"storage": 1, "task_id": 5, "workflow_id": null, "time": null}}', "'$context'"),
        ('{"$context": {"storage": 1, "task_id": null, "workflow_id": "nope", "time": null}}', "'$context'"),
    ],
)
def test_bad_encodings_raise_value_error_naming_the_tag(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        codec.loads(text)
    assert message in str(info.value)


def test_decode_refuses_non_json_nodes() -> None:
    with pytest.raises(ValueError):
        codec.decode({"a": object()})
    with pytest.raises(ValueError):
        codec.decode((1, 2))


def test_loads_refuses_invalid_json() -> None:
    with pytest.raises(ValueError):
        codec.loads('{"a": ')
