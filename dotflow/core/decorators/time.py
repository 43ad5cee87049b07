"""`@time`: store how long a call took, in seconds, on the `duration` attribute of what it returned."""

from __future__ import annotations

from datetime import datetime
from functools import wraps
from typing import Any, Callable

__all__ = ["time"]


def time(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `func` so that its result (an object with a writable `duration`, such as a Task) gets
    the wall-clock seconds the call took."""

    @wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = datetime.now()
        result = func(*args, **kwargs)
        result.duration = (datetime.now() - began).total_seconds()
        return result

    return timed
