"""A step that `dotflow start --step` runs in the fault tests: it leaves a file behind, so a test can
tell whether any step ran."""

from __future__ import annotations

import os
from pathlib import Path

from dotflow import action

__all__ = ["touch_marker"]


@action
def touch_marker():  # type: ignore[no-untyped-def]
    Path(os.environ["MARKER_FILE"]).touch()
    return "ran"
