"""`python -m dotflow.cli`: the same as the `dotflow` console script."""

from __future__ import annotations

import sys

from dotflow.cli import main

__all__: list[str] = []

sys.exit(main())
