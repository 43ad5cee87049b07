"""Build the storage named by `--storage` and its options (`start`, `schedule`, `journal verify`),
or by the description a run recorded in the journal (`verify --run`).

For an audit (`read_only=True`) nothing is created, locked or changed: a folder or a database that
does not exist is an error (exit 2) instead of being made, and a BatchStorage folder is opened
without writing or locking anything in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dotflow.cli import CommandError
from dotflow.storage.file import BATCH_MARKER

__all__ = ["build_storage", "describe", "options_from_description"]


def build_storage(args: Any, read_only: bool = False) -> Any:
    """The storage the options describe, or None when `--storage` was not given."""
    name = getattr(args, "storage", None)
    if name is None:
        return None
    from dotflow import providers

    if name == "default":
        if read_only:
            raise CommandError(
                "--storage default is the in-memory storage: a new process finds it empty, so there is nothing "
                "to verify; name the storage the run wrote to", 2,
            )  # fmt: skip
        return providers.StorageDefault()
    if name in ("file", "batch"):
        return _file_storage(args, name, read_only)
    if name == "sql":
        if not args.storage_url:
            raise CommandError("--storage sql needs --storage-url (a database URL)", status=2)
        if read_only:
            _require_sql_checkpoints(args.storage_url)
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


def options_from_description(described: dict[str, Any] | None, run_id: str) -> dict[str, Any]:
    """The storage options of a run's recorded storage (what `build_storage` reads); a CommandError
    when the run's storage cannot be opened again from its description."""
    where = f"run {run_id}"
    kind = None if described is None else described.get("storage")
    if described is None or kind is None:
        raise CommandError(f"{where} recorded no storage: name it (--storage and its options)", 2)
    if kind == "default":
        raise CommandError(f"{where} kept its checkpoints in memory (StorageDefault): they are gone, nothing to verify", 2)
    if kind == "custom":
        raise CommandError(f"{where} used a storage of its own ({described.get('class')}): verify it from Python "
                           "with Journal.verify(storage)", 2)  # fmt: skip
    if described.get("secret"):
        raise CommandError(f"{where} used a database whose URL holds a password: pass --storage sql --storage-url", 2)
    options: dict[str, Any] = {"storage": kind}
    for name in ("path", "bucket", "prefix", "region", "endpoint_url", "project", "storage_url"):
        options[name] = described.get(name)
    return options


def describe(described: dict[str, Any] | None) -> str:
    """A run's recorded storage in a few words ("file /srv/out", "s3 bucket/prefix")."""
    if not described:
        return ""
    kind = str(described.get("storage"))
    if kind in ("file", "batch"):
        return f"{kind} {described.get('path')}"
    if kind == "sql":
        return f"sql {described.get('storage_url')}"
    if kind in ("s3", "gcs"):
        return f"{kind} {described.get('bucket')}/{described.get('prefix') or ''}"
    if kind == "custom":
        return f"custom {described.get('class')}"
    return kind


def _file_storage(args: Any, name: str, read_only: bool) -> Any:
    from dotflow import providers

    path = args.path
    if path is None:
        raise CommandError(f"--storage {name} needs --path (the folder given to StorageFile)", 2)
    if read_only:
        folder = Path(path, "tasks")
        if not Path(path).is_dir():
            raise CommandError(f"no checkpoint folder at {str(path)!r} (it does not exist)", 2)
        if not folder.is_dir():
            raise CommandError(f"no checkpoints in {str(path)!r} (it has no tasks/ folder)", 2)
    if name == "batch":  # BatchStorage(StorageFile): group commit; reads its segments
        return providers.BatchStorage(providers.StorageFile(path=path), read_only=read_only)
    storage = providers.StorageFile(path=path)
    if os.path.exists(storage.path / BATCH_MARKER):
        raise CommandError(f"{path} holds checkpoints written through BatchStorage: use --storage batch", status=2)
    return storage


def _require_sql_checkpoints(url: str) -> None:
    """The StorageSQL database exists and is at this version's schema (checked without changing it)."""
    from uow.journal_migrate import current_revision, head_revision, mismatch
    from uow.sql_engine import make_engine

    engine = make_engine(url, wal=False)
    try:
        database = engine.url.database
        if engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:"):
            if not os.path.isfile(database):
                raise CommandError(f"no SQL storage at {database!r} (the file does not exist)", 2)
        found = current_revision(engine)
        wanted = head_revision()
        if found != wanted:
            raise CommandError(mismatch(engine, found, wanted), 2)
    finally:
        engine.dispose()
