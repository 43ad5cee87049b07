"""Decorators of the public API (`time`)."""

from __future__ import annotations

from dotflow.core.decorators.time import time

__all__ = ["time"]
