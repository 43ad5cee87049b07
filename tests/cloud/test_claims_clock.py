"""Leases on S3 and GCS are timed by the service's clock: a worker whose own clock is an hour off still
sees a live lease as live, and an expired one as expired (within the service's one-second resolution)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import dotflow.storage.object_leases as object_leases

pytestmark = pytest.mark.slow


class SkewedTime:
    """`time` as a worker whose clock is `skew` seconds off sees it."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return time.time() + self.skew


@pytest.mark.parametrize("skew", [3600.0, -3600.0])
def test_a_worker_with_a_skewed_clock_judges_a_lease_by_the_services_clock(
    cloud: Any, skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = cloud.storage()
    lease = honest.create_lease("wf-0-a", owner="worker-a", ttl=30)
    assert lease is not None and 29 <= lease.remaining <= 31
    monkeypatch.setattr(object_leases, "time", SkewedTime(skew))
    skewed = cloud.storage()
    assert skewed.create_lease("wf-0-a", owner="worker-b", ttl=30) is None  # (learns the service's time)
    seen = skewed.read_lease("wf-0-a")
    assert seen is not None and seen.owner == "worker-a"
    assert not seen.expired
    assert 25 <= seen.remaining <= 31  # what the honest worker sees, give or take the service's resolution
    assert abs(seen.now - time.time()) < 2.5  # the service's time, not the skewed worker's


def test_a_takeover_is_judged_by_the_service_whatever_the_local_clock(cloud: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker an hour ahead would see every lease as long expired by its own clock; it does not."""
    honest = cloud.storage()
    honest.create_lease("wf-0-b", owner="worker-a", ttl=2)
    monkeypatch.setattr(object_leases, "time", SkewedTime(3600.0))
    ahead = cloud.storage()
    assert ahead.create_lease("wf-0-b", owner="worker-b", ttl=2) is None
    assert not ahead.read_lease("wf-0-b").expired
