"""The lease records of S3 and GCS storage (claims): an object ``<prefix><key>.lease``.

The lease is in the object's metadata (owner, epoch, ttl; the body is a random revision, so that
every write has a new ETag), so one HEAD (S3) or metadata GET (GCS)
reads it with its version (ETag / generation) and the time the service wrote it (LastModified /
updated). Every change is one conditional request: create with ``If-None-Match: *`` /
``ifGenerationMatch=0``, replace with ``If-Match`` / ``ifGenerationMatch=<generation>``, delete with
the same condition.

Time: a lease expires `ttl` seconds after the service wrote it, on the service's clock. The
service's "now" is the local clock plus the offset last observed between the two (the ``Date`` of
S3's responses, one-second resolution; on GCS the ``updated`` time of this worker's own lease writes
and the ``Date`` of a refused create), so workers whose clocks disagree judge a lease alike, within
about a second on S3. A storage built with `clock=` (tests) times leases by that clock alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Final
from urllib.parse import quote, unquote

from uow.leases import LEASE_SUFFIX, Lease, check_lease_request, lease_from_record

__all__ = ["LeaseObject", "ObjectLeases", "http_date"]

OWNER: Final = "dotflow-lease-owner"
EPOCH: Final = "dotflow-lease-epoch"
TTL: Final = "dotflow-lease-ttl"
EXPIRES_AT: Final = "dotflow-lease-expires-at"  # only with an injected clock
MAX_NAME_BYTES: Final = 1024  # of an object name, on S3 and GCS


@dataclass(frozen=True)
class LeaseObject:
    """A lease object as read: its metadata, version, and when the service wrote it (None: unknown)."""

    metadata: Mapping[str, str]
    version: str
    written_at: float | None


def http_date(value: str | None) -> float | None:
    """Unix time of an HTTP ``Date`` / ``Last-Modified`` header (None if absent or unreadable)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class ObjectLeases:
    """Leases over objects; mixed into `ObjectStorage`, whose backends supply the three primitives."""

    _lease_clock: Callable[[], float] | None
    _offset: float = 0.0  # the service's clock minus the local clock, as last observed
    _offset_known: bool = False

    def _object_name(self, key: Any) -> str:
        raise NotImplementedError

    def _lease_put(self, name: str, key: str, body: bytes, metadata: dict[str, str], if_version: str | None) -> str | None:
        """Write an object of `body` and `metadata`: if absent (`if_version` None) or at `if_version`.
        The new version, or None if the condition failed."""
        raise NotImplementedError

    def _lease_head(self, name: str, key: str) -> LeaseObject | None:
        """The lease object's metadata, version and write time (None: absent)."""
        raise NotImplementedError

    def _remove(self, name: str, key: str, if_version: Any) -> bool:
        raise NotImplementedError

    # -- the contract (uow.contracts.SupportsLeases) ----------------------------------------------

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl)
        return self._write_lease(key, owner, 1, ttl, None)

    def read_lease(self, key: str) -> Lease | None:
        found = self._lease_head(self._lease_name(key), key)
        if found is None:
            return None
        now = self._service_now()
        metadata = found.metadata
        try:
            record: dict[str, Any] | None = {
                "owner": unquote(metadata[OWNER]),
                "epoch": int(metadata[EPOCH]),
                "ttl": float(metadata[TTL]),
                "expires_at": float(metadata[EXPIRES_AT]) if EXPIRES_AT in metadata else None,
            }
        except (KeyError, ValueError):
            record = None  # not a lease record: read as expired, so it can be taken over
        written_at = found.written_at if self._lease_clock is None else None
        return lease_from_record(key, record, now=now, version=found.version, written_at=written_at)

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl, epoch)
        if not isinstance(version, str) or not version:
            return None
        return self._write_lease(key, owner, epoch, ttl, version)

    def delete_lease(self, key: str, *, version: str) -> bool:
        if not isinstance(version, str) or not version:
            return False
        return self._remove(self._lease_name(key), key, version)

    # -- helpers ----------------------------------------------------------------------------------

    def _write_lease(self, key: str, owner: str, epoch: int, ttl: float, if_version: str | None) -> Lease | None:
        metadata = {OWNER: quote(owner, safe=""), EPOCH: str(epoch), TTL: repr(float(ttl))}
        if self._lease_clock is not None:
            metadata[EXPIRES_AT] = repr(self._lease_clock() + ttl)
        version = self._lease_put(self._lease_name(key), key, secrets.token_hex(16).encode("ascii"), metadata, if_version)
        if version is None:
            return None
        now = self._service_now()
        return Lease(key, owner, epoch, now + ttl, now, version)

    def _lease_name(self, key: str) -> str:
        name = self._object_name(key) + LEASE_SUFFIX
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise ValueError(f"invalid storage key {key!r}: its lease's object name would pass {MAX_NAME_BYTES} bytes")
        return name

    def _observe(self, service_time: float | None, *, resolution: float = 0.0) -> None:
        """Note the service's clock, read from a response that arrived just now (`resolution`: the
        precision of that reading; the middle of its range is taken)."""
        if service_time is None:
            return
        low = service_time - time.time()  # a header rounds the time down: the offset is in [low, low + resolution]
        if self._offset_known and resolution and low <= self._offset <= low + resolution:
            return  # agrees with what is known (perhaps more precisely)
        self._offset = low + resolution / 2
        self._offset_known = True

    def _service_now(self) -> float:
        if self._lease_clock is not None:
            return self._lease_clock()
        return time.time() + self._offset
