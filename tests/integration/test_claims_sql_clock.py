"""Leases on StorageSQL (without `clock=`) are timed by the database's clock: a worker whose own clock is
an hour off judges a lease as every other worker does."""

from __future__ import annotations

import time

import pytest

from dotflow.providers import StorageSQL


@pytest.mark.parametrize("skew", [3600.0, -3600.0])
def test_a_worker_with_a_skewed_clock_judges_a_lease_by_the_database(
    schema_url: str, skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = StorageSQL(schema_url)
    real = time.time
    try:
        lease = honest.create_lease("wf-0-a", owner="worker-a", ttl=30)
        assert lease is not None and abs(lease.now - real()) < 2
        monkeypatch.setattr(time, "time", lambda: real() + skew)
        skewed = StorageSQL(schema_url)
        try:
            seen = skewed.read_lease("wf-0-a")
            assert seen is not None and not seen.expired
            assert 25 <= seen.remaining <= 30  # (a loaded machine takes a while to open the second storage)
            assert abs(seen.now - real()) < 2  # the database's time, not the worker's
            renewed = skewed.replace_lease("wf-0-a", version=seen.version, owner="worker-a", epoch=1, ttl=30)
            assert renewed is not None and abs(renewed.expires_at - (real() + 30)) < 2
        finally:
            skewed.close()
    finally:
        honest.close()
