"""`Config(max_workers=...)`: validated once, the CPU count by default."""

from __future__ import annotations

import os

import pytest

from dotflow import Config
from dotflow.core.config import default_max_workers


def test_the_default_is_the_cpu_count_this_process_may_use() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert Config().max_workers == default_max_workers() == expected
    assert Config(max_workers=None).max_workers == expected


def test_a_whole_number_is_kept() -> None:
    config = Config(max_workers=3)
    assert config.max_workers == 3
    config.max_workers = 1
    assert config.max_workers == 1


@pytest.mark.parametrize("value", [0, -2])
def test_fewer_than_one_worker_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match=rf"Config\(max_workers=...\) must be at least 1, got {value}"):
        Config(max_workers=value)


@pytest.mark.parametrize("value, name", [(2.0, "float"), ("4", "str"), (True, "bool")])
def test_anything_but_a_whole_number_is_refused_naming_its_type(value: object, name: str) -> None:
    with pytest.raises(TypeError, match=rf"whole number of processes or None, not {name}"):
        Config(max_workers=value)  # type: ignore[arg-type]


def test_assigning_later_is_checked_too() -> None:
    config = Config()
    with pytest.raises(ValueError, match="at least 1"):
        config.max_workers = 0
    assert config.max_workers == default_max_workers()
