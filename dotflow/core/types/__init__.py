"""String-constant types of the public API (plain classes, not Enums, as in dotflow 1.0.1).

One module per type, at the paths 1.0.1 has (`dotflow.core.types.status`, ...); all are also
importable from this package.
"""

from __future__ import annotations

from dotflow.core.types.execution import TypeExecution
from dotflow.core.types.input_change import VALID_POLICIES, TypeInputChange
from dotflow.core.types.overlap import TypeOverlap
from dotflow.core.types.status import TypeStatus
from dotflow.core.types.storage import TypeStorage
from dotflow.core.types.workflow import WorkflowStatus

__all__ = [
    "TypeExecution",
    "TypeInputChange",
    "TypeOverlap",
    "TypeStatus",
    "TypeStorage",
    "VALID_POLICIES",
    "WorkflowStatus",
]
