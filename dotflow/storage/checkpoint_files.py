"""Checkpoint files in one folder: the primitives `StorageFile` and BatchStorage's segment backend share.

A `Folder` is a resolved folder and the longest file name it takes. On it:

- key checks: `bad_key_reason`, `check_prefix`, `key_path` (a key is one plain file name that
  cannot lead out of the folder, a symlink included);
- reading a per-key file (`read_file`, then `decode_file`): a checkpoint document, or a file
  dotflow 1.0.1 wrote (with its `.meta` sidecar), or an unreadable file (`RawFile.problem`);
- writing one durably: `write_temp` (a private temp file in the folder, written and fsync'd), then
  `replace_file` or `link_file` (the commit point), then `sync_folder`; `write_file` does the three;
- removing one: `remove_file` (the file, its 1.0.1 sidecar, then the folder's fsync).

The file format itself is in `checkpoint_format` and described in `storage_file`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uow.leases import LEASE_SUFFIX

from dotflow.core.context import Context
from dotflow.core.exception import CorruptCheckpointError
from dotflow.values.checkpoint_format import (
    decode_document,
    document_expires_at,
    is_document,
    is_legacy_body,
    is_number,
    legacy_context,
    legacy_failure,
)

__all__ = [
    "BATCH_MARKER",
    "LEASE_SUFFIX",
    "META_SUFFIX",
    "Folder",
    "RawFile",
    "bad_key_reason",
    "check_prefix",
    "content_version",
    "data_file_names",
    "decode_file",
    "invalid_key",
    "key_path",
    "link_file",
    "read_file",
    "remove_file",
    "replace_file",
    "sidecar_names",
    "sidecar_of",
    "sync_folder",
    "unlink",
    "unlink_sidecar",
    "write_all",
    "write_file",
    "write_temp",
]

BATCH_MARKER = ".batch-store"  # present while BatchStorage keeps the folder's checkpoints in segments
META_SUFFIX = ".meta"  # dotflow 1.0.1's sidecar, read for legacy files only
_MAX_NAME_BYTES = 255  # NAME_MAX of common file systems; a folder may allow fewer
_TEMP_FLAGS = (  # a private new file, never through a symlink (as tempfile.mkstemp opens one)
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)  # (Windows: no newline translation)
)
_TEMP_ATTEMPTS = 100  # random names tried before giving up (tempfile.mkstemp's TMP_MAX is 10000)


@dataclass(frozen=True)
class Folder:
    """A folder of checkpoint files: its resolved path (a str: pathlib costs microseconds on the write
    path) and the longest file name its file system takes."""

    root: str
    name_max: int

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Folder:
        """The folder at `path`, created (with parents) if missing."""
        Path(path).mkdir(parents=True, exist_ok=True)
        root = Path(path).resolve()
        return cls(str(root), _name_max(root))

    def path_of(self, name: str) -> str:
        return self.root + os.sep + name


# --------------------------------------------------------------------------------------------- keys


def bad_key_reason(key: Any, name_max: int = _MAX_NAME_BYTES) -> str | None:
    """Why `key` cannot name a checkpoint file (None if it can)."""
    if not isinstance(key, str):
        return f"a key must be a str, not {type(key).__name__}"
    if not key:
        return "a key must not be empty"
    if "/" in key or "\\" in key:
        return "it contains a path separator"
    if "\0" in key:
        return "it contains a NUL character"
    if key in (".", ".."):
        return "it names a directory"
    if key.startswith("."):
        return "it starts with '.' (reserved for temporary files)"
    if key.endswith(META_SUFFIX):
        return "it ends with '.meta' (reserved for dotflow 1.0.1 metadata files)"
    if key.endswith(LEASE_SUFFIX):
        return "it ends with '.lease' (reserved for the lease records of claims)"
    if len(key.encode("utf-8", "surrogatepass")) > name_max:
        return f"it is longer than {name_max} bytes, the longest file name this folder takes"
    return None


def invalid_key(key: Any, reason: str) -> ValueError:
    return ValueError(f"invalid storage key {key!r}: {reason}; a key cannot escape the storage folder")


def check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")


def key_path(folder: Folder, key: str) -> tuple[str, bool]:
    """(path of `key`'s file, whether it exists), after checking that the key cannot leave the folder."""
    reason = bad_key_reason(key, folder.name_max)
    if reason is None:
        target = folder.path_of(key)
        # The folder is resolved and the key is one plain name, so only the key's own entry can
        # lead elsewhere, as a symlink: one lstat, and a full resolve only for a link.
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            return target, False
        if not stat.S_ISLNK(mode) or os.path.dirname(os.path.realpath(target)) == folder.root:
            return target, True
        reason = "it resolves to a path outside the storage folder"
    raise invalid_key(key, reason)


def data_file_names(folder: Folder, prefix: str) -> list[str]:
    """Names of the checkpoint files starting with `prefix` (no dot-files, no 1.0.1 sidecars, no links)."""
    with os.scandir(folder.root) as entries:
        return [
            entry.name
            for entry in entries
            if entry.name.startswith(prefix)
            and bad_key_reason(entry.name, folder.name_max) is None
            and entry.is_file(follow_symlinks=False)  # a symlink could lead out of the folder
        ]


def sidecar_names(folder: Folder, prefix: str) -> list[str]:
    """Names of the 1.0.1 sidecars whose data key starts with `prefix`."""
    with os.scandir(folder.root) as entries:
        names = [entry.name for entry in entries if entry.name.endswith(META_SUFFIX)]
    return [name for name in names if name.startswith(prefix) and not name.startswith(".")]


# -------------------------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class RawFile:
    """A checkpoint file as read from disk, before its value is decoded."""

    body: Any  # the parsed JSON, or None if the file did not parse
    legacy: bool
    expires_at: float | None
    legacy_fingerprint: str | None
    identity: tuple[int, int, int]  # (inode, mtime_ns, size): to avoid deleting a file replaced meanwhile
    version: str
    problem: str | None = None  # why the file is unreadable: neither format (reads raise; delete works)
    document: bytes | None = None  # the file's bytes, for a checkpoint document (see Checkpoint.document)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def live_version(self, now: float) -> str | None:
        """The version a conditional write compares with: None if expired or a 1.0.1 failure marker."""
        if self.expired(now) or (self.legacy and legacy_failure(legacy_context(self.body))):
            return None
        return self.version


def read_file(folder: Folder, target: str) -> RawFile | None:
    """The file at `target` (None if there is none), parsed but not decoded."""
    try:
        with open(target, "rb") as fh:
            found = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return None
    identity = (found.st_ino, found.st_mtime_ns, found.st_size)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        problem = "the file is empty" if not data else "it is not valid JSON (truncated, or edited by hand?)"
        return RawFile(None, False, None, None, identity, content_version(data), problem)
    if is_document(body):
        revision = body.get("revision")
        version = revision if type(revision) is str else content_version(data)
        return RawFile(body, False, document_expires_at(body), None, identity, version, document=data)
    if not is_legacy_body(body):
        problem = f"it holds a JSON {type(body).__name__}, neither a checkpoint document nor a dotflow 1.0.1 file"
        return RawFile(None, False, None, None, identity, content_version(data), problem)
    meta_path = sidecar_of(folder, target)
    meta = {} if meta_path is None else _read_legacy_meta(meta_path)
    expires_at = meta.get("expires_at")
    fingerprint = meta.get("fingerprint")
    return RawFile(
        body,
        True,
        expires_at if is_number(expires_at) else None,
        fingerprint if type(fingerprint) is str else None,
        identity,
        content_version(data),
    )


def decode_file(key: str, target: str, raw: RawFile) -> tuple[Context, str | None, bool, str]:
    """(context, fingerprint, is_legacy, version) of a file read by `read_file`.

    An unreadable file raises `CorruptCheckpointError` naming the key and the file.
    """
    where = f" (file: {target})"
    if raw.problem is not None:
        raise CorruptCheckpointError(key, raw.problem + where, path=target)
    if raw.legacy:
        return legacy_context(raw.body), raw.legacy_fingerprint, True, raw.version
    context, fingerprint = decode_document(key, raw.body, where, path=target)
    return context, fingerprint, False, raw.version


def content_version(data: bytes) -> str:
    """The version of a file written without a revision (by dotflow 1.0.1, say): a digest of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sidecar_of(folder: Folder, target: str | os.PathLike[str]) -> str | None:
    """The 1.0.1 sidecar of `target`, or None when its name would be too long to exist."""
    meta = os.fspath(target) + META_SUFFIX
    if len(os.path.basename(meta).encode("utf-8", "surrogatepass")) > folder.name_max:
        return None
    return meta


def _read_legacy_meta(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
    except (OSError, ValueError, RecursionError):
        return {}
    return meta if type(meta) is dict else {}


# ------------------------------------------------------------------------------------------- writes


def write_temp(folder: Folder, target: str, data: bytes, *, durable: bool = True) -> str:
    """A durable temp file ``.<name>.<random>.tmp`` holding `data`, in the folder of `target` (so a
    rename is atomic), private to the owner as `tempfile.mkstemp` makes one. `durable=False` skips
    the fsync (a lease record: one torn by a power cut reads as expired)."""
    fd, tmp = _open_temp(folder, os.path.basename(target))
    try:
        try:  # raw writes: a buffered file object would add an fstat, an ioctl and an lseek
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink(tmp)
        raise
    return tmp


def _open_temp(folder: Folder, name: str) -> tuple[int, str]:
    # (Not tempfile.mkstemp: its name generator and pathlib handling cost more than the write itself.)
    prefix = f"{folder.root}{os.sep}.{name[:100]}."
    for _ in range(_TEMP_ATTEMPTS):
        tmp = f"{prefix}{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue  # a name another writer holds: draw again
    raise FileExistsError(f"no free temporary file name for {name!r} in {folder.root}")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_file(tmp: str, target: str) -> None:
    """Move the temp file over `target` (the commit point); the temp file is removed if that fails."""
    try:
        os.replace(tmp, target)
    except BaseException:
        unlink(tmp)
        raise


def link_file(tmp: str, target: str) -> bool:
    """Put `tmp` in place only if `target` does not exist (atomic, no lock). Consumes `tmp` on success.

    Returns False (`tmp` kept, for the caller) if `target` exists. Once linked the checkpoint is
    stored, and the temp name is only a second link to it: the caller removes it.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except BaseException:
        unlink(tmp)
        raise
    return True


def write_file(folder: Folder, target: str, data: bytes) -> None:
    """Replace `target` with `data` durably: temp file, rename, fsync of the folder."""
    replace_file(write_temp(folder, target, data), target)
    sync_folder(folder.root)


def sync_folder(root: str | os.PathLike[str]) -> None:
    """fsync the folder, so renames and unlinks in it are durable."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink(path: str | os.PathLike[str]) -> None:
    """Remove `path`; a missing file is not an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def unlink_sidecar(folder: Folder, target: str | os.PathLike[str]) -> None:
    meta = sidecar_of(folder, target)
    if meta is not None:
        unlink(meta)


def remove_file(folder: Folder, target: str) -> None:
    """Remove a checkpoint file and its 1.0.1 sidecar, durably."""
    unlink(target)
    unlink_sidecar(folder, target)
    sync_folder(folder.root)


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the folder's file system takes, at most 255."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        return _MAX_NAME_BYTES
    return min(limit, _MAX_NAME_BYTES) if limit > 0 else _MAX_NAME_BYTES
