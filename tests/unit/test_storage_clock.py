"""ttl is measured on the storage's injected clock, so no test sleeps for a ttl."""

from __future__ import annotations

from pathlib import Path

import pytest

from dotflow.core.context import Context
from dotflow.storage.memory import StorageDefault
from dotflow.storage.file import StorageFile
from dotflow.testing import ManualClock


@pytest.fixture(params=["default", "file"])
def make(request: pytest.FixtureRequest, tmp_path: Path):
    def build(clock: ManualClock):
        if request.param == "default":
            return StorageDefault(clock=clock), "wf-1-a"
        return StorageFile(path=tmp_path, clock=clock), "wf-1-a.json"

    return build


def test_a_key_lives_until_its_ttl_on_the_injected_clock(make, clock: ManualClock) -> None:
    storage, key = make(clock)
    storage.post(key, Context(storage="v"), ttl=60)
    clock.advance(59.9)
    assert storage.get(key).storage == "v"
    assert storage.list_keys("wf-1-") == [key]
    clock.advance(0.1)
    assert storage.get(key).storage is None
    assert storage.read_checkpoint(key) is None
    assert storage.list_keys("wf-1-") == []


def test_a_post_without_ttl_never_expires_on_the_injected_clock(make, clock: ManualClock) -> None:
    storage, key = make(clock)
    storage.post(key, Context(storage="old"), ttl=1)
    storage.post(key, Context(storage="new"))
    clock.advance(10**6)
    assert storage.get(key).storage == "new"


def test_default_clocks() -> None:
    import time

    assert StorageDefault()._clock is time.monotonic
    assert StorageFile.__init__.__kwdefaults__["clock"] is time.time
