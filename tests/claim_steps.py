"""Two steps for the one-process claims tests (tests/unit/test_claims.py, test_claim_events.py).

`RAN` records which step ran; the first step calls each hook in `DURING` while it runs (a test puts
there what another worker does meanwhile). Each test module clears both before every test.
"""

from __future__ import annotations

from typing import Any, Callable

from dotflow import Context, action

RAN: list[str] = []
DURING: list[Callable[[], Any]] = []


@action
def first() -> str:
    RAN.append("first")
    for hook in DURING:
        hook()
    return "first-value"


@action
def second(previous_context: Context) -> str:
    RAN.append("second")
    return f"{previous_context.storage}+second"
