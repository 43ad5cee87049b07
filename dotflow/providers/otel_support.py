"""What the OpenTelemetry providers share: importing the SDK (extra `otel`) and naming the error."""

from __future__ import annotations

from typing import Any

from dotflow.core.exception import ModuleNotFound

__all__ = ["require_otel"]


def require_otel() -> Any:
    """The `opentelemetry.sdk` package, or `ModuleNotFound` naming the extra to install."""
    try:
        import opentelemetry.sdk
        import opentelemetry.sdk.resources  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFound(module="opentelemetry", library="'dotflow-uow[otel]'") from None
    return opentelemetry.sdk
