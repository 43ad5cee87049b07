"""Leases: a record next to a checkpoint saying which worker runs its step, until when.

A lease guards the checkpoint key it is named after. It is kept by the same storage, under the key
plus `LEASE_SUFFIX` (a name no checkpoint can have, and that `list_keys` never lists), and written
with the storage's own conditional writes (`uow.contracts.SupportsLeases`):

- `create_lease` creates it only if there is none (an expired one still counts: it is taken over
  with `replace_lease`, so the epoch grows and two takers cannot both win);
- `replace_lease` replaces it only if it is still at the version read (a renewal keeps owner and
  epoch; a takeover sets a new owner and the next epoch);
- `delete_lease` deletes it only if it is still at the version read;
- `read_lease` reads it, with the storage's clock at that moment (`Lease.now`).

`expires_at` and `now` are on the storage's clock (a database's ``now()``, an object store's time,
the local clock for files and memory), so workers whose own clocks disagree still agree on
whether a lease has expired. A lease record that cannot be parsed (a file torn by a power cut: leases
are not fsynced) reads as an expired lease of no owner, so it can be taken over.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "LEASE_FORMAT",
    "LEASE_SUFFIX",
    "Lease",
    "check_lease_request",
    "decode_lease",
    "encode_lease",
    "lease_from_record",
]

LEASE_SUFFIX: Final = ".lease"
LEASE_FORMAT: Final = "dotflow-lease"
UNREADABLE_OWNER: Final = "(unreadable lease record)"


@dataclass(frozen=True)
class Lease:
    """A lease as read or written: who holds `key`'s lease, in which epoch, until when.

    `version` changes on every write (what `replace_lease` / `delete_lease` compare with);
    `expires_at` and `now` (the storage's clock when it was read or written) are in seconds on the
    storage's clock.
    """

    key: str
    owner: str
    epoch: int
    expires_at: float
    now: float
    version: str

    @property
    def expired(self) -> bool:
        return self.now >= self.expires_at

    @property
    def remaining(self) -> float:
        """Seconds left, on the storage's clock (0 once expired)."""
        return max(0.0, self.expires_at - self.now)


def check_lease_request(key: Any, owner: Any, ttl: Any, epoch: Any = 1) -> None:
    """Refuse a lease request with a bad key, owner, ttl or epoch (one clear error)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"a lease's key must be a non-empty str, not {key!r}")
    if not isinstance(owner, str) or not owner:
        raise TypeError(f"a lease's owner must be a non-empty str, not {owner!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"a lease's ttl must be a positive, finite number of seconds, not {ttl!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"a lease's epoch must be an int from 1 up, not {epoch!r}")


def encode_lease(owner: str, epoch: int, ttl: float, expires_at: float | None, revision: str) -> bytes:
    """The lease record as stored by files, SQL rows and memory (JSON; never evaluated when read)."""
    record = {
        "format": LEASE_FORMAT,
        "owner": owner,
        "epoch": epoch,
        "ttl": float(ttl),
        "expires_at": expires_at,
        "revision": revision,
    }
    return json.dumps(record, separators=(",", ":")).encode("ascii")


def decode_lease(data: bytes | str) -> dict[str, Any] | None:
    """The fields of a stored lease record, or None if it is not one (torn, empty, something else)."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("format") != LEASE_FORMAT:
        return None
    owner, epoch, ttl = record.get("owner"), record.get("epoch"), record.get("ttl")
    expires_at = record.get("expires_at")
    if not isinstance(owner, str) or isinstance(epoch, bool) or not isinstance(epoch, int):
        return None
    if not isinstance(ttl, (int, float)) or not (expires_at is None or isinstance(expires_at, (int, float))):
        return None
    return record


def lease_from_record(key: str, record: dict[str, Any] | None, *, now: float, version: str,
                      written_at: float | None = None) -> Lease:  # fmt: skip
    """A `Lease` from a decoded record (None: unreadable, read as expired, of no owner).

    The expiry is the record's `expires_at`, or `written_at + ttl` for a storage that dates the
    record itself (an object's LastModified).
    """
    if record is None:
        return Lease(key, UNREADABLE_OWNER, 0, -math.inf, now, version)
    expires_at = record.get("expires_at")
    if expires_at is None:
        expires_at = -math.inf if written_at is None else written_at + float(record["ttl"])
    return Lease(key, record["owner"], record["epoch"], float(expires_at), now, version)
