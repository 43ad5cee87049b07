"""Small helpers of the public API: the do-nothing callbacks used as defaults."""

from __future__ import annotations

from dotflow.utils.basic_functions import basic_callback, basic_function

__all__ = ["basic_callback", "basic_function"]
