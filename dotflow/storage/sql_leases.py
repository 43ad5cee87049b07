"""The lease records of `StorageSQL` (claims): rows of the checkpoint table, keyed ``<key>.lease``.

A lease row uses the checkpoint table's columns: `document` holds the lease record
(`uow.leases.encode_lease`: owner, epoch, ttl, revision), `version` its revision, and `expires_at`
the expiry, computed by the database itself (``clock_timestamp()`` on PostgreSQL, ``julianday('now')``
on SQLite) when no `clock` was given to the storage: every worker judges a lease by the database's
clock, whatever its own clock says. No table or migration of its own.

Each change is one conditional statement: an INSERT ... ON CONFLICT DO NOTHING (create), an
UPDATE ... WHERE version = ... (replace), a DELETE ... WHERE version = ... (delete). Inside a
storage transaction, `holds_lease` reads the row locked (FOR UPDATE on PostgreSQL; SQLite's
transactions take the write lock first), so a takeover cannot slip in before the commit ends, and
`release_lease` deletes it there: a worker whose lease changed hands cannot commit at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import Float, Table, cast, func, literal, select, text
from sqlalchemy.engine import Connection

from uow.leases import LEASE_SUFFIX, Lease, check_lease_request, decode_lease, encode_lease, lease_from_record

__all__ = ["SQLLeases"]


class SQLLeases:
    """Lease statements on one connection; `clock` None: the database's clock."""

    def __init__(self, table: Table, connection: Connection, clock: Callable[[], float] | None) -> None:
        self.table = table
        self.connection = connection
        self._clock = clock

    def create(self, key: str, owner: str, ttl: float) -> Lease | None:
        from uow.sql_engine import dialect_insert

        check_lease_request(key, owner, ttl)
        table = self.table
        revision = uuid.uuid4().hex
        statement = dialect_insert(self.connection)(table).values(self._row(key, owner, 1, ttl, revision))
        statement = statement.on_conflict_do_nothing(index_elements=[table.c.key])
        row = self.connection.execute(statement.returning(table.c.expires_at)).first()
        return None if row is None else Lease(key, owner, 1, row.expires_at, row.expires_at - ttl, revision)

    def read(self, key: str, *, for_update: bool = False) -> Lease | None:
        table = self.table
        now = self._now().label("now")
        query = select(table.c.document, table.c.version, table.c.expires_at, now).where(table.c.key == _name(key))
        if for_update:
            query = query.with_for_update()
        row = self.connection.execute(query).first()
        if row is None:
            return None
        record = decode_lease(row.document)
        if record is not None:
            record = {**record, "expires_at": row.expires_at}
        return lease_from_record(key, record, now=float(row.now), version=row.version)

    def replace(self, key: str, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl, epoch)
        table = self.table
        revision = uuid.uuid4().hex
        matching = (table.c.key == _name(key), table.c.version == version)
        statement = table.update().where(*matching).values(self._row(key, owner, epoch, ttl, revision))
        row = self.connection.execute(statement.returning(table.c.expires_at)).first()
        return None if row is None else Lease(key, owner, epoch, row.expires_at, row.expires_at - ttl, revision)

    def delete(self, key: str, version: str) -> bool:
        table = self.table
        statement = table.delete().where(table.c.key == _name(key), table.c.version == version)
        return self.connection.execute(statement.returning(table.c.key)).first() is not None

    def holds(self, key: str, owner: str, epoch: int) -> Lease | None:
        """The lease if `owner` holds it in `epoch` (its row locked until the transaction ends), else None."""
        lease = self.read(key, for_update=True)
        return lease if lease is not None and lease.owner == owner and lease.epoch == epoch else None

    def _row(self, key: str, owner: str, epoch: int, ttl: float, revision: str) -> dict[str, Any]:
        now = self._now()
        return {
            "key": _name(key),
            "document": encode_lease(owner, epoch, ttl, None, revision).decode("ascii"),
            "expires_at": now + float(ttl),
            "version": revision,
            "updated_at": datetime.now(timezone.utc),
        }

    def _now(self) -> Any:
        """The clock leases are judged by, as an SQL expression: the storage's `clock` if one was
        given, else the database's own."""
        if self._clock is not None:
            return literal(float(self._clock()), Float)
        if self.connection.dialect.name == "postgresql":
            return cast(func.extract("epoch", func.clock_timestamp()), Float)
        return cast(text("(julianday('now') - 2440587.5) * 86400.0"), Float)


def _name(key: str) -> str:
    """The row key of `key`'s lease (a checkpoint key never ends with the suffix)."""
    from dotflow.storage.sql import check_key

    check_key(key, room=len(LEASE_SUFFIX))
    return key + LEASE_SUFFIX
