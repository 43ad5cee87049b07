"""Values users return: Enum members, pathlib paths, dataclasses and any registered type, exactly."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest

import dotflow.codec
from dotflow import Config, DotFlow, action
from dotflow.values import codec
from dotflow.core.exception import CorruptCheckpointError, InputChangedError
from dotflow.values.fingerprint import UnfingerprintableInputError, fingerprint_of
from dotflow.providers import StorageDefault, StorageFile
from tests.user_types import Batch, Level, Order, Stage, sample_batch


@pytest.fixture
def registry() -> Iterator[None]:
    """Registrations a test makes are undone after it (the module-level ones of tests.user_types stay)."""
    by_type, by_tag = dict(codec._BY_TYPE), dict(codec._BY_TAG)
    yield
    codec._BY_TYPE.clear()
    codec._BY_TYPE.update(by_type)
    codec._BY_TAG.clear()
    codec._BY_TAG.update(by_tag)


def exact_round_trip(value: Any) -> Any:
    text = dotflow.codec.dumps(value)
    json.loads(text)  # plain JSON for any reader
    back = dotflow.codec.loads(text)
    assert back == value
    assert type(back) is type(value)
    return back


# ------------------------------------------------------------------------------------ built-in forms


def test_enum_members_are_written_by_name_under_their_tag() -> None:
    assert codec.encode(Stage.CLEAN) == {"$tests.user_types.Stage": "CLEAN"}
    assert exact_round_trip(Stage.CLEAN) is Stage.CLEAN
    assert exact_round_trip([Level.HIGH, {"l": Level.LOW}]) == [Level.HIGH, {"l": Level.LOW}]
    assert type(exact_round_trip(Level.HIGH)) is Level  # an IntEnum stays an IntEnum, not an int


@pytest.mark.parametrize("path", [Path("/data/in.csv"), Path("rel/x"), PurePosixPath("/a/b"), PureWindowsPath(r"C:\a\b")])
def test_paths_round_trip_as_their_own_class(path: Any) -> None:
    assert exact_round_trip(path) == path
    assert exact_round_trip({"p": (path,)})["p"][0] == path


def test_path_forms() -> None:
    assert codec.encode(Path("/x/y")) == {"$path": "/x/y"}
    assert codec.encode(PureWindowsPath(r"C:\x")) == {"$purewindowspath": "C:\\x"}


def test_dataclass_fields_round_trip_with_nested_types() -> None:
    batch = sample_batch()
    form = codec.encode(batch)
    assert form == {
        "$tests.user_types.Batch": {
            "name": "b1",
            "rows": {"$tuple": [1, 2, 3]},
            "stage": {"$tests.user_types.Stage": "CLEAN"},
            "source": {"$path": "/data/in.csv"},
            "checked": True,
        }
    }
    back = exact_round_trip(batch)
    assert back.checked is True  # an init=False field is set back too
    assert type(back.rows) is tuple and back.stage is Stage.CLEAN


def test_a_registered_pydantic_model_round_trips() -> None:
    order = Order(sku="tea", qty=3, tags=["x"])
    assert codec.encode(order) == {"$shop.Order": {"sku": "tea", "qty": 3, "tags": ["x"]}}
    assert exact_round_trip([order, {"o": order}]) == [order, {"o": order}]


# ------------------------------------------------------------------------------------ refusals


class Loose(enum.Enum):
    A = 1


@dataclasses.dataclass
class Free:
    x: int


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (Loose.A, "dotflow.codec.register(Loose)"),
        (Free(1), "dotflow.codec.register(Free)"),
        (Opaque(), "dotflow.codec.register(Opaque, encode, decode)"),
    ],
)
def test_unregistered_classes_are_refused_with_the_call_that_registers_them(value: Any, hint: str) -> None:
    with pytest.raises(codec.UnencodableValueError) as info:
        codec.encode({"v": value})
    assert info.value.path == "value['v']"
    assert hint in str(info.value)


def test_a_subclass_of_a_registered_class_is_not_taken_for_it(registry: None) -> None:
    @dataclasses.dataclass(frozen=True)
    class Special(Batch):
        extra: int = 0

    with pytest.raises(codec.UnencodableValueError, match="Special"):
        codec.encode(Special("n", (), Stage.RAW, Path("/")))


def test_unknown_tag_names_the_tag() -> None:
    with pytest.raises(codec.DecodeError, match=r"unknown tag '\$nobody\.Knows'"):
        codec.loads('{"$nobody.Knows": 1}')


def test_a_stored_document_with_an_unregistered_tag_names_key_and_tag(tmp_path: Path, registry: None) -> None:
    storage = StorageFile(path=tmp_path)

    @dotflow.codec.register
    @dataclasses.dataclass
    class Gone:
        x: int

    storage.post(key="wf-1", context=dotflow.Context(storage=[Gone(1)]))
    dotflow.codec.unregister(Gone)
    with pytest.raises(CorruptCheckpointError) as info:
        storage.get(key="wf-1")
    message = str(info.value)
    assert "'wf-1'" in message and "Gone" in message and "unknown tag" in message


def test_a_bad_member_name_or_field_set_is_an_error_naming_the_tag() -> None:
    with pytest.raises(codec.DecodeError, match=r"tests.user_types.Stage.*no member named 'PURPLE'"):
        codec.loads('{"$tests.user_types.Stage": "PURPLE"}')
    with pytest.raises(codec.DecodeError, match=r"tests.user_types.Batch.*expected the fields"):
        codec.loads('{"$tests.user_types.Batch": {"name": "x"}}')
    with pytest.raises(codec.DecodeError, match=r"shop.Order.*ValidationError"):
        codec.loads('{"$shop.Order": {"sku": "tea", "qty": "many"}}')


def test_failing_user_functions_are_named(registry: None) -> None:
    class Fragile:
        pass

    def boom(value: Any) -> Any:
        raise RuntimeError("nope")

    dotflow.codec.register(Fragile, boom, boom, tag="fragile")
    with pytest.raises(codec.UnencodableValueError, match=r"value\[0\].*encoder raised RuntimeError: nope"):
        codec.encode([Fragile()])
    with pytest.raises(codec.DecodeError, match=r"'\$fragile'.*RuntimeError: nope"):
        codec.loads('{"$fragile": 1}')


def test_register_refuses_what_it_cannot_keep_apart(registry: None) -> None:
    class A:
        pass

    class B:
        pass

    ident = (lambda v: 1, lambda p: A())
    with pytest.raises(ValueError, match="built-in form"):
        dotflow.codec.register(tuple, *ident)
    with pytest.raises(ValueError, match="built-in form"):
        dotflow.codec.register(dotflow.Context, *ident)
    with pytest.raises(TypeError, match="needs a class"):
        dotflow.codec.register(A(), *ident)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="needs encode and decode"):
        dotflow.codec.register(A)
    with pytest.raises(TypeError, match="both encode and decode"):
        dotflow.codec.register(A, ident[0])
    with pytest.raises(ValueError, match="built-in tag"):
        dotflow.codec.register(A, *ident, tag="tuple")
    with pytest.raises(ValueError, match="invalid tag"):
        dotflow.codec.register(A, *ident, tag="$a")
    dotflow.codec.register(A, *ident, tag="same")
    with pytest.raises(ValueError, match="already registered for"):
        dotflow.codec.register(B, *ident, tag="same")
    dotflow.codec.register(A, *ident, tag="other")  # again: replaces, and frees the old tag
    assert dotflow.codec.registered_tag(A) == "other"
    dotflow.codec.register(B, *ident, tag="same")
    dotflow.codec.unregister(A)
    assert dotflow.codec.registered_tag(A) is None
    with pytest.raises(KeyError):
        dotflow.codec.unregister(A)


# ------------------------------------------------------------------------------------ fingerprints


def test_registered_values_have_a_canonical_fingerprint() -> None:
    one = fingerprint_of([Order(sku="tea", qty=3)])
    assert one == fingerprint_of([Order(sku="tea", qty=3)])
    assert one != fingerprint_of([Order(sku="tea", qty=4)])
    assert fingerprint_of([Path("/a")]) != fingerprint_of([Path("/b")])
    assert fingerprint_of([Path("/a")]) != fingerprint_of(["/a"])


def test_an_unregistered_opaque_input_still_has_no_fingerprint() -> None:
    with pytest.raises(UnfingerprintableInputError):
        fingerprint_of([Opaque()])


def test_registering_a_dataclass_keeps_its_fingerprint(registry: None) -> None:
    before = fingerprint_of([Free(1)])
    dotflow.codec.register(Free)
    assert fingerprint_of([Free(1)]) == before


# ------------------------------------------------------------------------------- through DotFlow

RAN: list[str] = []


@action
def make_batch(initial_context):
    RAN.append("make_batch")
    return sample_batch()


@action
def to_order(previous_context):
    RAN.append("to_order")
    batch = previous_context.storage
    assert isinstance(batch, Batch)
    return {"order": Order(sku=batch.name, qty=len(batch.rows)), "level": Level.HIGH, "where": batch.source}


def test_a_pipeline_of_user_types_checkpoints_on_file_storage_and_resumes(tmp_path: Path) -> None:
    RAN.clear()
    workflow_id = str(uuid.uuid4())

    def run() -> DotFlow:
        flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path)), workflow_id=workflow_id)
        flow.task.add(step=[make_batch, to_order], initial_context=Stage.RAW)
        flow.start(resume=True, on_input_change="raise")
        return flow

    first = run()
    assert RAN == ["make_batch", "to_order"]
    assert [task.status for task in first.result_task()] == ["Completed", "Completed"]
    RAN.clear()
    again = run()  # a new DotFlow: both tasks come back from their files
    assert RAN == []
    assert [task.restored for task in again.result_task()] == [True, True]
    batch, result = again.result_storage()
    assert batch == sample_batch() and type(batch) is Batch
    assert result == {"order": Order(sku="b1", qty=3), "level": Level.HIGH, "where": Path("/data/in.csv")}
    assert type(result["level"]) is Level


def test_a_registered_initial_context_decides_resume(tmp_path: Path) -> None:
    workflow_id = str(uuid.uuid4())

    def run(order: Order) -> DotFlow:
        flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path)), workflow_id=workflow_id)
        flow.task.add(step=make_batch, initial_context=order)
        flow.start(resume=True, on_input_change="raise")
        return flow

    run(Order(sku="tea", qty=1))
    assert run(Order(sku="tea", qty=1)).result_task()[0].restored
    with pytest.raises(InputChangedError):
        run(Order(sku="tea", qty=2))


def test_memory_and_file_storage_accept_the_same_values(tmp_path: Path) -> None:
    for storage in (StorageDefault(), StorageFile(path=tmp_path)):
        RAN.clear()
        flow = DotFlow(config=Config(storage=storage))
        flow.task.add(step=[make_batch, to_order])
        flow.start()
        assert [task.status for task in flow.result_task()] == ["Completed", "Completed"], storage
