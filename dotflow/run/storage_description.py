"""A run's storage described for the journal: plain JSON, no credentials (`describe_storage`).

The description uses the names of `dotflow start`'s storage options (`storage`, `path`, `bucket`,
`prefix`, `region`, `endpoint_url`, `project`, `storage_url`), so `dotflow journal verify --run`
can open the same storage again without being told. A URL with a password is recorded masked and
marked `secret`: verify then needs the storage options. A storage of another kind is recorded by
its class (`custom`), which verify cannot open.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["describe_storage"]


def describe_storage(storage: Any) -> dict[str, Any] | None:
    """The description of `storage` (see the module docstring); None for no storage."""
    if storage is None:
        return None
    from dotflow.storage.batch import BatchStorage
    from dotflow.storage.file import StorageFile
    from dotflow.storage.memory import StorageDefault

    if isinstance(storage, BatchStorage):
        inner = storage.storage
        if isinstance(inner, StorageFile):
            return {"storage": "batch", "path": _folder(inner)}
        return {"storage": "custom", "class": _class_name(storage)}
    if isinstance(storage, StorageFile):
        return {"storage": "file", "path": _folder(storage)}
    if isinstance(storage, StorageDefault):
        return {"storage": "default"}
    # The SDK-backed storages are looked at only if their module was imported: otherwise no
    # storage can be one of them, and describing a run imports nothing.
    sql = sys.modules.get("dotflow.storage.sql")
    if sql is not None and isinstance(storage, sql.StorageSQL):
        url = storage.engine.url
        described: dict[str, Any] = {"storage": "sql", "storage_url": url.render_as_string(hide_password=True)}
        if url.password:
            described["secret"] = True
        return described
    s3 = sys.modules.get("dotflow.storage.s3")
    if s3 is not None and isinstance(storage, s3.StorageS3):
        return {"storage": "s3", "bucket": storage.bucket, "prefix": storage.prefix, "region": storage.region,
                "endpoint_url": storage.endpoint_url}  # fmt: skip
    gcs = sys.modules.get("dotflow.storage.gcs")
    if gcs is not None and isinstance(storage, gcs.StorageGCS):
        return {"storage": "gcs", "bucket": storage.bucket, "prefix": storage.prefix, "project": storage.project}
    return {"storage": "custom", "class": _class_name(storage)}


def _folder(storage: Any) -> str:
    """The folder given to StorageFile (its checkpoints are in its `tasks/`), absolute."""
    return str(Path(storage.folder.root).parent)


def _class_name(storage: Any) -> str:
    kind = type(storage)
    return f"{kind.__module__}.{kind.__qualname__}"
