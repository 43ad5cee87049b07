"""A Core statement run on the driver's own cursor, for a read whose rows are many and plain.

SQLAlchemy compiles the statement once per dialect: its SQL text, and the order of its parameters
when the driver takes them by position. Each run executes that text on the DBAPI cursor under the
SQLAlchemy connection and yields the rows as the driver returns them (tuples), without the result
layer's per-row work (Row objects, type processing). That is right only for columns the driver
already returns as the caller wants them: strings and integers, not dates or JSON.

Used where a few microseconds a row count: the resume check reads one row per restored key
(about 2 us of its 5-7 us per key, benchmarks/README.md#verified-resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator, Mapping

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Dialect
    from sqlalchemy.sql import Select

__all__ = ["DriverQuery"]

# (SQL text, parameter names in order if the driver takes them by position, their default values)
_Compiled = tuple[str, "tuple[str, ...] | None", Mapping[str, Any]]


class DriverQuery:
    """`statement` (a Select whose bound parameters all have values, or are given to `rows`)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, str], _Compiled] = {}  # (dialect, driver) -> its compiled form

    def _compile(self, dialect: Dialect) -> _Compiled:
        which = (dialect.name, dialect.driver)  # drivers of one database may differ in paramstyle
        compiled = self._compiled.get(which)
        if compiled is None:
            # render_postcompile: an IN over a fixed list becomes one placeholder per value, now
            sql = self.statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
            names = tuple(sql.positiontup) if sql.positiontup is not None else None
            compiled = self._compiled[which] = (sql.string, names, sql.construct_params())
        return compiled

    def rows(self, connection: Connection, parameters: dict[str, Any], batch: int) -> Generator[tuple[Any, ...], None, None]:
        """The statement's rows, fetched `batch` at a time; closing the iterator closes the cursor."""
        text, names, defaults = self._compile(connection.dialect)
        values = {**defaults, **parameters}
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(text, values if names is None else tuple(values[name] for name in names))
            while True:
                fetched = cursor.fetchmany(batch)
                if not fetched:
                    return
                yield from fetched
        finally:
            cursor.close()
