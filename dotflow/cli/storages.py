"""Build the storage named by `--storage` and its options (shared by `start` and `journal verify`)."""

from __future__ import annotations

import os
from typing import Any

from dotflow.cli import CommandError
from dotflow.storage.file import BATCH_MARKER

__all__ = ["build_storage"]


def build_storage(args: Any, read_only: bool = False) -> Any:
    """The storage the options describe, or None when `--storage` was not given. `read_only` (for
    audits): a BatchStorage folder is opened without deleting or writing anything in it."""
    name = getattr(args, "storage", None)
    if name is None:
        return None
    from dotflow import providers

    if name == "default":
        return providers.StorageDefault()
    if name == "file":
        storage = providers.StorageFile(path=args.path)
        if os.path.exists(storage.path / BATCH_MARKER):
            raise CommandError(
                f"{args.path} holds checkpoints written through BatchStorage: use --storage batch", status=2
            )
        return storage
    if name == "batch":  # BatchStorage(StorageFile): group commit; reads its segments
        return providers.BatchStorage(providers.StorageFile(path=args.path), read_only=read_only)
    if name == "sql":
        if not args.storage_url:
            raise CommandError("--storage sql needs --storage-url (a database URL)", status=2)
        return providers.StorageSQL(args.storage_url)
    if not args.bucket:
        raise CommandError(f"--storage {name} needs --bucket", status=2)
    options: dict[str, Any] = {"bucket": args.bucket}
    if args.prefix is not None:
        options["prefix"] = args.prefix
    if name == "s3" and args.region:
        options["region"] = args.region
    if name == "s3" and args.endpoint_url:
        options["endpoint_url"] = args.endpoint_url
    if name == "gcs" and args.project:
        options["project"] = args.project
    cls = getattr(providers, "StorageS3" if name == "s3" else "StorageGCS")
    return cls(**options)
