"""What S3 and GCS storage share: keys, documents, versions, TTL and conditional writes over objects.

`ObjectStorage` implements the whole Storage contract on top of a few primitives that each backend
module (`storage_s3`, `storage_gcs`) writes with its SDK: download, conditional upload, conditional
delete, paginated listing. Each backend also translates its SDK's errors into `StorageError`.

Objects
    Object name = prefix + storage key. A key must be a non-empty str without NUL, must not start
    with "/", must have no "." or ".." path segment, and must not end with ".fingerprint" (the side
    objects of dotflow 1.0.1), so a key cannot reach outside the prefix. Each object holds one
    checkpoint document (`checkpoint_format`): value, fingerprint and expiry travel together and are
    replaced together. Every write also carries a fresh random `revision`, so two writes of the same
    value still produce different bodies and therefore different ETags on S3 (GCS generations change
    on every write anyway). The expiry is copied into the object's metadata (`dotflow-expires-at`) so
    that a listing can skip expired keys without downloading them.

Versions
    The version of a key is the service's own token for the object: the S3 ETag, the GCS generation
    (as a str). `post_if` / `delete_if` hand it to the service's conditional request, so the check
    and the write are one atomic step on the server, whichever machine the other writer is on.

TTL
    `expires_at` is wall-clock time (`clock()`, `time.time` by default: a checkpoint is read by other
    machines). An expired object reads as missing everywhere; it stays in the bucket until it is
    overwritten or deleted (a bucket lifecycle rule can sweep old objects).

dotflow 1.0.1 objects
    A JSON array of strings is read as 1.0.1 wrote it (each element ``json.dumps(payload)``); its
    fingerprint comes from the side object ``<key>.fingerprint`` (body ``["<fp>"]``),
    read by `read_checkpoint` only for such objects. 1.0.1 never expired anything. Any other body
    (empty, not JSON, another JSON value, a broken document) raises `CorruptCheckpointError` (a
    ValueError naming the key, the object and the bucket): it is never taken as missing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from uow.leases import LEASE_SUFFIX

from dotflow.abc.storage import Checkpoint, VersionedStorage
from dotflow.core.context import Context
from dotflow.core.exception import CorruptCheckpointError
from dotflow.storage.object_leases import ObjectLeases
from dotflow.values.checkpoint_format import (
    decode_document,
    document_expires_at,
    encode_document,
    is_document,
    is_legacy_body,
    legacy_context,
    legacy_failure,
)

__all__ = ["EXPIRES_AT_METADATA", "LEGACY_FINGERPRINT_SUFFIX", "Listed", "ObjectStorage", "UNCONDITIONAL"]

LEGACY_FINGERPRINT_SUFFIX: Final = ".fingerprint"
EXPIRES_AT_METADATA: Final = "dotflow-expires-at"
MAX_OBJECT_NAME_BYTES: Final = 1024  # both S3 and GCS


class _Unconditional:
    def __repr__(self) -> str:
        return "UNCONDITIONAL"


UNCONDITIONAL: Final = _Unconditional()
"""`if_version` for a write or delete that does not depend on the current version."""


@dataclass(frozen=True)
class Downloaded:
    body: bytes
    version: str


@dataclass(frozen=True)
class Listed:
    """One object of a listing; `metadata` is None when the listing does not carry it (S3)."""

    name: str
    metadata: Mapping[str, str] | None


@dataclass(frozen=True)
class _Loaded:
    context: Context
    fingerprint: str | None
    expires_at: float | None
    version: str
    revision: str | None
    legacy: bool


UPLOAD_THREADS = 8  # concurrent uploads of one post_many (BatchStorage's flush); the SDK clients are thread-safe


class ObjectStorage(ObjectLeases, VersionedStorage):
    """Checkpoints as objects `prefix + key` in one bucket; see the module docstring.

    Leases (claims) are empty objects `prefix + key + ".lease"` (see `object_leases`), never listed
    or deleted as checkpoints."""

    service = "object store"  # "S3" / "GCS", used in error messages

    def __init__(self, *, bucket: str, prefix: str, clock: Callable[[], float] | None, page_size: int) -> None:
        super().__init__()
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"{self.service} bucket must be a non-empty str, not {bucket!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if prefix:
            reason = _bad_name_reason(prefix, what="prefix")
            if reason is not None:
                raise ValueError(f"invalid prefix {prefix!r}: {reason}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be an int from 1 to 1000, not {page_size!r}")
        self.bucket = bucket
        self.prefix = prefix
        self.page_size = page_size
        self._clock = time.time if clock is None else clock
        self._lease_clock = clock  # None: leases are timed by the service's clock

    # --------------------------------------------------------------- primitives of each backend

    def _download(self, name: str, key: str) -> Downloaded | None:
        """Body and version of an object, or None if it does not exist. One GET."""
        raise NotImplementedError

    def _upload(self, name: str, key: str, data: bytes, metadata: dict[str, str], if_version: Any) -> bool:
        """Write an object in one request; `if_version` is UNCONDITIONAL, None (must not exist) or a
        version. False if the service refused the precondition (nothing written)."""
        raise NotImplementedError

    def _remove(self, name: str, key: str, if_version: Any) -> bool:
        """Delete an object; False if it did not exist or the precondition failed."""
        raise NotImplementedError

    def _list(self, full_prefix: str) -> Iterator[Listed]:
        """Every object whose name starts with `full_prefix`, page by page (`page_size` per request)."""
        raise NotImplementedError

    def _metadata(self, name: str) -> Mapping[str, str] | None:
        """The user metadata of one object (None if it is gone); for listings that lack it."""
        raise NotImplementedError

    def _remove_many(self, names: list[str]) -> None:
        """Delete these objects (missing ones are fine)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- Storage contract

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        name = self._object_name(key)
        data, metadata, _ = self._encode(key, context, ttl, fingerprint)
        self._upload(name, key, data, metadata, UNCONDITIONAL)

    def post_many(self, items: Iterable[tuple[str, Any, int | None, str | None]]) -> None:
        """Upload `(key, context, ttl, fingerprint)` items concurrently, up to `UPLOAD_THREADS` at once.

        Every item is encoded before the first upload, so a value that cannot be stored refuses the
        whole batch. An object store has no transaction across objects: if an upload fails, others may
        be stored (each whole); the first error is raised once every upload has ended.
        """
        prepared = [(self._object_name(key), key, *self._encode(key, context, ttl, fingerprint)[:2])
                    for key, context, ttl, fingerprint in items]  # fmt: skip
        if len(prepared) < 2:
            for name, key, data, metadata in prepared:
                self._upload(name, key, data, metadata, UNCONDITIONAL)
            return
        from concurrent.futures import ThreadPoolExecutor

        workers = min(UPLOAD_THREADS, len(prepared))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dotflow-upload") as pool:
            uploads = [pool.submit(self._upload, name, key, data, metadata, UNCONDITIONAL)
                       for name, key, data, metadata in prepared]  # fmt: skip
        errors = [error for error in (upload.exception() for upload in uploads) if error is not None]
        if errors:
            raise errors[0]

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        name = self._object_name(key)
        if version is not None and not isinstance(version, str):
            raise TypeError(f"version must be a str or None, not {type(version).__name__}")
        data, metadata, revision = self._encode(key, context, ttl, fingerprint)
        if self._upload(name, key, data, metadata, version):
            return True
        # The precondition failed. Look once at what is there (never on the success path):
        current = self._load(key, name)
        if current is not None and current.revision == revision:
            return True  # the SDK retried our own write after its first attempt had landed
        if version is None and current is not None and self._absent(current):
            # An expired object (or 1.0.1's failure marker) counts as absent: replace exactly that
            # object, or lose to whoever did.
            return self._upload(name, key, data, metadata, current.version)
        return False

    def delete_if(self, key: str, *, version: str | None) -> bool:
        name = self._object_name(key)
        if version is None:
            current = self._load(key, name)
            if current is None:
                return True
            if self._absent(current):
                self._remove(name, key, current.version)  # tidy up; someone else's newer object stays
                return True
            return False
        if not isinstance(version, str):
            raise TypeError(f"version must be a str or None, not {type(version).__name__}")
        return self._remove(name, key, version)

    def get(self, key: str) -> Context:
        loaded = self._live(key)
        return Context() if loaded is None else loaded.context

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        loaded = self._live(key)
        if loaded is None:
            return None
        fingerprint = loaded.fingerprint
        if loaded.legacy:
            if legacy_failure(loaded.context):
                return None  # 1.0.1 wrote null for a failed task
            fingerprint = self._legacy_fingerprint(key)
        return Checkpoint(context=loaded.context, fingerprint=fingerprint, version=loaded.version)

    def delete(self, key: str) -> bool:
        name = self._object_name(key)
        metadata = self._metadata(name)  # a HEAD: existence and expiry without the body
        if metadata is not None:
            self._remove(name, key, UNCONDITIONAL)
        self._remove(name + LEGACY_FINGERPRINT_SUFFIX, key, UNCONDITIONAL)
        return metadata is not None and not self._past(_parse_expiry(metadata.get(EXPIRES_AT_METADATA)))

    def delete_prefix(self, prefix: str) -> int:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if not prefix:
            raise ValueError(
                f"delete_prefix refuses an empty prefix: it would delete every checkpoint under "
                f"{self.prefix!r} in {self.service} bucket {self.bucket!r}"
            )
        live, names = 0, []
        for listed, live_key in self._listing(prefix):
            names.append(listed.name)
            live += live_key
        for start in range(0, len(names), self.page_size):
            self._remove_many(names[start : start + self.page_size])
        return live

    def list_keys(self, prefix: str = "") -> list[str]:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        keys = []
        for listed, live_key in self._listing(prefix):
            if live_key:
                keys.append(listed.name[len(self.prefix) :])
        return sorted(keys)

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare the stored payload with `expected`, then write `new` only if the object is still the
        one compared (a conditional write on its version): atomic against every other writer."""
        name = self._object_name(key)
        data, metadata, _ = self._encode(key, new, ttl, fingerprint)
        current = self._load(key, name)
        live = current is not None and not self._expired(current)
        payload = current.context.storage if live and current is not None else None
        if payload != expected:
            return False
        return self._upload(name, key, data, metadata, None if current is None else current.version)

    # ----------------------------------------------------------------------------------- helpers

    def _object_name(self, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        reason = _bad_name_reason(key, what="key")
        if reason is None and key.endswith(LEGACY_FINGERPRINT_SUFFIX):
            reason = "it ends with '.fingerprint' (reserved for dotflow 1.0.1 side objects)"
        if reason is None and key.endswith(LEASE_SUFFIX):
            reason = "it ends with '.lease' (reserved for the lease records of claims)"
        name = self.prefix + key
        if reason is None and len(name.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES:
            reason = f"prefix + key is longer than {MAX_OBJECT_NAME_BYTES} bytes"
        if reason is not None:
            raise ValueError(f"invalid storage key {key!r}: {reason}; a key cannot escape its prefix")
        return name

    def _encode(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> tuple[bytes, dict[str, str], str]:
        revision = secrets.token_hex(16)
        now = self._clock()
        data = encode_document(key, context, ttl, fingerprint, revision=revision, now=now)
        metadata = {} if ttl is None else {EXPIRES_AT_METADATA: repr(float(now + ttl))}
        return data, metadata, revision

    def _load(self, key: str, name: str) -> _Loaded | None:
        downloaded = self._download(name, key)
        if downloaded is None:
            return None
        where = f"(object {name!r} in {self.service} bucket {self.bucket!r})"
        try:
            body = json.loads(downloaded.body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            problem = "the object is empty" if not downloaded.body else "it is not valid JSON"
            raise CorruptCheckpointError(key, f"{problem} {where}") from exc
        if is_document(body):
            context, fingerprint = decode_document(key, body, f" {where}")
            revision = body.get("revision")
            return _Loaded(
                context,
                fingerprint,
                document_expires_at(body),
                downloaded.version,
                revision if isinstance(revision, str) else None,
                legacy=False,
            )
        if not is_legacy_body(body):
            kind = type(body).__name__
            raise CorruptCheckpointError(
                key, f"it holds a JSON {kind}, neither a checkpoint document nor a dotflow 1.0.1 object {where}"
            )
        return _Loaded(legacy_context(body), None, None, downloaded.version, None, legacy=True)

    def _live(self, key: str) -> _Loaded | None:
        loaded = self._load(key, self._object_name(key))
        if loaded is None or self._expired(loaded):
            return None
        return loaded

    def _legacy_fingerprint(self, key: str) -> str | None:
        side = self._download(self._object_name(key) + LEGACY_FINGERPRINT_SUFFIX, key)
        if side is None:
            return None
        try:
            body = json.loads(side.body)
        except (ValueError, RecursionError):
            return None
        if type(body) is list and len(body) == 1 and type(body[0]) is str:
            return body[0]
        return None

    def _expired(self, loaded: _Loaded) -> bool:
        return self._past(loaded.expires_at)

    def _absent(self, loaded: _Loaded) -> bool:
        """What `read_checkpoint` reports as missing: expired, or the null dotflow 1.0.1 wrote for a failure."""
        return self._expired(loaded) or (loaded.legacy and legacy_failure(loaded.context))

    def _past(self, expires_at: float | None) -> bool:
        return expires_at is not None and self._clock() >= expires_at

    def _listing(self, prefix: str) -> Iterable[tuple[Listed, bool]]:
        """(object, whether it is a live key) for every object under prefix + `prefix`: 1.0.1 side
        objects, objects of this prefix that are not valid keys and expired keys are not."""
        if "\0" in prefix:
            raise ValueError(f"invalid prefix {prefix!r}: it contains a NUL character")
        for listed in self._list(self.prefix + prefix):
            key = listed.name[len(self.prefix) :]
            if key.endswith(LEASE_SUFFIX):
                continue  # a claim's lease: not a checkpoint, and its holder's to delete
            if key.endswith(LEGACY_FINGERPRINT_SUFFIX) or _bad_name_reason(key, what="key") is not None:
                yield listed, False
                continue
            metadata = listed.metadata if listed.metadata is not None else self._metadata(listed.name)
            if metadata is None:
                continue  # deleted since it was listed
            yield listed, not self._past(_parse_expiry(metadata.get(EXPIRES_AT_METADATA)))


def _parse_expiry(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _bad_name_reason(name: str, *, what: str) -> str | None:
    if not name:
        return f"a {what} must not be empty"
    if "\0" in name:
        return "it contains a NUL character"
    if name.startswith("/"):
        return "it starts with '/'"
    if any(segment in (".", "..") for segment in name.split("/")):
        return "it has a '.' or '..' path segment"
    return None
