"""Input fingerprints are canonical across processes, and what has no canonical form is refused clearly."""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import sys
import uuid
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path

import pytest

from dotflow import Config, Context, DotFlow, action
from dotflow.values.fingerprint import (
    FP_KEY_SUFFIX,
    UnfingerprintableInputError,
    fingerprint_of,
    fp_key,
    read_fingerprint,
    write_fingerprint,
)
from dotflow.storage.memory import StorageDefault

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Settings:
    name: str
    tags: set[str]
    limits: dict[tuple[int, int], frozenset[str]]


class Color(enum.Enum):
    RED = "red"


def sample() -> list[object]:
    tags = {f"tag-{i}" for i in range(40)}
    return [
        Settings("etl", tags, {(1, 2): frozenset({"a", "b", "c", "d"}), (0, 1): frozenset()}),
        {"x", "y", "z", 3, (1, "a")},
        {frozenset({"p", "q"}): b"bytes", Decimal("1.50"): uuid.UUID(int=7)},
        Color.RED,
        OrderedDict(b=1, a=2),
        Context(storage={"in": "context"}),
    ]


SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.unit.test_fingerprint_canonical import sample
from dotflow.values.fingerprint import fingerprint_of
print(fingerprint_of(sample()))
"""


@pytest.mark.slow
def test_the_same_input_has_the_same_fingerprint_under_any_hash_seed() -> None:
    digests = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(ROOT)], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1
    assert digests == {fingerprint_of(sample())}


def test_set_iteration_order_never_reaches_the_fingerprint() -> None:
    one, other = set([1, 9]), set([9, 1])  # 1 and 9 share a slot: insertion order decides iteration order
    assert list(one) != list(other)
    assert fingerprint_of([Settings("a", one, {}), one]) == fingerprint_of([Settings("a", other, {}), other])
    assert fingerprint_of([{9: "x", 1: "y"}]) == fingerprint_of([{1: "y", 9: "x"}])


def test_different_inputs_have_different_fingerprints() -> None:
    base = fingerprint_of(sample())
    changed = sample()
    changed[0].tags.add("one-more")  # type: ignore[attr-defined]
    assert fingerprint_of(changed) != base
    assert fingerprint_of([Color.RED]) != fingerprint_of(["red"])
    assert fingerprint_of([Context(storage=1)]) == fingerprint_of([Context(storage=1)])  # ids and time ignored


class Opaque:
    def __init__(self) -> None:
        self.tags = {"a", "b"}


@pytest.mark.parametrize("value", [Opaque(), object(), lambda: 1, Opaque])
def test_a_value_without_a_canonical_form_is_refused_clearly(value: object) -> None:
    with pytest.raises(UnfingerprintableInputError, match=r"cannot fingerprint value\[1\]\['k'\]") as raised:
        fingerprint_of(["ok", {"k": value}])
    assert "fingerprint=" in str(raised.value)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, ValueError)


def test_a_value_that_fails_to_describe_itself_is_refused_clearly() -> None:
    class Broken(list):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("connection closed")

    with pytest.raises(UnfingerprintableInputError, match=r"value\[0\].*RuntimeError: connection closed"):
        fingerprint_of([Broken([1])])


def test_a_recursive_value_is_refused_clearly() -> None:
    loop: list[object] = [1]
    loop.append({"again": loop})
    with pytest.raises(UnfingerprintableInputError, match="contains itself"):
        fingerprint_of([loop])


def test_a_deeply_nested_value_is_refused_clearly_not_with_a_recursion_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnfingerprintableInputError, match="nested deeper than 256 levels"):
        fingerprint_of([deep])


def test_huge_integers_are_fingerprinted_whatever_the_digit_limit() -> None:
    huge = 7**20_000  # about 16900 digits: beyond the default int-to-str limit
    digest = fingerprint_of([huge])
    assert digest != fingerprint_of([huge + 1])
    medium = 10**700 + 3
    before = fingerprint_of([medium])
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert fingerprint_of([medium]) == before
        assert fingerprint_of([huge]) == digest
    finally:
        sys.set_int_max_str_digits(limit)


RUNS: list[object] = []


@action
def echo(initial_context):
    RUNS.append("echo")
    return "done"


def run(storage: StorageDefault, value: object, **kwargs: object) -> DotFlow:
    flow = DotFlow(config=Config(storage=storage), workflow_id="fp-workflow")
    flow.task.add(step=echo, initial_context=value)
    flow.start(**kwargs)
    return flow


def test_a_run_that_needs_no_fingerprint_accepts_any_input() -> None:
    RUNS.clear()
    loop: list[object] = []
    loop.append(loop)
    storage = StorageDefault()
    run(storage, Opaque())
    run(storage, loop, resume=True)  # on_input_change="reuse" never compares fingerprints
    assert RUNS == ["echo"]


@pytest.mark.parametrize("policy", ["raise", "reset"])
def test_a_resume_that_compares_fingerprints_refuses_input_it_cannot_fingerprint(policy: str) -> None:
    RUNS.clear()
    loop: list[object] = []
    loop.append(loop)
    for value, message in ((Opaque(), "Opaque"), (loop, "contains itself")):
        with pytest.raises(UnfingerprintableInputError, match=message) as raised:
            run(StorageDefault(), value, resume=True, on_input_change=policy)
        assert "initial_context of task '0-echo'" in str(raised.value)
    assert RUNS == []
    run(StorageDefault(), Opaque(), resume=True, on_input_change=policy, fingerprint="release-7")
    assert RUNS == ["echo"]


def test_1_0_1_fingerprint_helpers_are_kept() -> None:
    storage = StorageDefault()
    assert FP_KEY_SUFFIX == "-_input_fp" and fp_key("wf") == "wf-_input_fp"
    assert read_fingerprint(storage, "wf") is None
    write_fingerprint(storage, "wf", "abc")
    assert read_fingerprint(storage, "wf") == "abc"
