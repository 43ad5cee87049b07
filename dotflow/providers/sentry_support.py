"""What the Sentry providers share: importing `sentry_sdk` (extra `sentry`) and initialising it."""

from __future__ import annotations

from typing import Any

from dotflow.core.exception import ModuleNotFound

__all__ = ["require_sentry"]


def require_sentry() -> Any:
    """The `sentry_sdk` module, or `ModuleNotFound` naming the extra to install."""
    try:
        import sentry_sdk
    except ModuleNotFoundError:
        raise ModuleNotFound(module="sentry-sdk", library="'dotflow-uow[sentry]'") from None
    return sentry_sdk
