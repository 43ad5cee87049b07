"""Steps that tests/integration/test_cli.py starts through `dotflow start --step ...`."""

from __future__ import annotations

from dotflow import action

__all__ = ["always_fails", "greet", "not_a_workflow", "raises_the_given_error"]


@action
def greet(initial_context):  # type: ignore[no-untyped-def]
    return {"greeting": f"hello {initial_context.storage}"}


@action(retry=2, retry_delay=0)
def always_fails():  # type: ignore[no-untyped-def]
    raise RuntimeError("the upstream API answered 503")


def not_a_workflow() -> str:
    return "a string, not a DotFlow"


@action
def raises_the_given_error():  # type: ignore[no-untyped-def]
    import os

    raise ValueError(os.environ["CLI_STEP_ERROR"])
