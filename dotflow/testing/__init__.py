"""Test helpers for authors of dotflow storages: `StorageContract`, the tests every backend passes."""

from __future__ import annotations

from dotflow.testing.storage_contract import ManualClock, StorageContract

__all__ = ["ManualClock", "StorageContract"]
