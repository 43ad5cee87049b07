"""`TypeInputChange`: what a resumed run does when its input changed; `VALID_POLICIES` lists them."""

from __future__ import annotations

__all__ = ["TypeInputChange", "VALID_POLICIES"]


class TypeInputChange:
    REUSE = "reuse"
    RESET = "reset"
    RAISE = "raise"


VALID_POLICIES = (TypeInputChange.REUSE, TypeInputChange.RESET, TypeInputChange.RAISE)
