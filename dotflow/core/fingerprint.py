"""Input fingerprints: a digest of a workflow's inputs, committed with every checkpoint.

On resume, a checkpoint whose fingerprint differs from the current one was computed from other
input; `on_input_change` decides what happens (reuse it, reset the workflow, or raise).

The digest is SHA-256 of the inputs' sorted-key JSON (the same digest as dotflow 1.0.1 for plain
JSON inputs). Other inputs use the checkpoint value encoding; values it cannot encode use their
type name and repr with memory addresses removed, so the digest is stable across processes.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from dotflow.core import codec

__all__ = ["FP_KEY_SUFFIX", "fingerprint_of", "fp_key", "read_fingerprint", "write_fingerprint"]

FP_KEY_SUFFIX = "_input_fp"
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def fingerprint_of(payloads: list[Any]) -> str:
    try:
        text = json.dumps(payloads, sort_keys=True)
    except (TypeError, ValueError):
        text = json.dumps(_canonical(payloads), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    try:
        return codec.encode(value)
    except (TypeError, ValueError):
        pass
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        pairs = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return {"$dict": sorted(pairs, key=lambda pair: json.dumps(pair, sort_keys=True))}
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    return {"$repr": f"{kind}:{_ADDRESS.sub('', repr(value))}"}


def fp_key(workflow_id: Any) -> str:
    """The key 1.0.1 kept a workflow's fingerprint under (kept for callers of this helper)."""
    return f"{workflow_id}-{FP_KEY_SUFFIX}"


def read_fingerprint(storage: Any, workflow_id: Any) -> str | None:
    value = storage.get(key=fp_key(workflow_id)).storage
    return value if isinstance(value, str) else None


def write_fingerprint(storage: Any, workflow_id: Any, fingerprint: str) -> None:
    from dotflow.core.context import Context

    storage.post(key=fp_key(workflow_id), context=Context(storage=fingerprint))
