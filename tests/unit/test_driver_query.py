"""`uow.driver_query.DriverQuery`: a Core select run on the DBAPI cursor gives the rows SQLAlchemy would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, select
from sqlalchemy.engine import Connection

from uow.driver_query import DriverQuery

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("kind", String), Column("name", String))


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as setup:
        setup.execute(items.insert(), [{"id": n, "kind": "ab"[n % 2], "name": f"[item {n}]'"} for n in range(50)])
    with engine.connect() as opened:
        yield opened
    engine.dispose()


def test_rows_are_the_ones_sqlalchemy_gives_with_a_fixed_in_list_and_a_parameter(connection: Connection) -> None:
    statement = (
        select(items.c.id, items.c.name)
        .where(items.c.id.in_((3, 4, 5, 6, 7, 8)), items.c.kind == bindparam("kind", None))
        .order_by(items.c.id.desc())
    )
    query = DriverQuery(statement)
    for kind in ("a", "b"):
        expected = [tuple(row) for row in connection.execute(statement, {"kind": kind})]
        assert list(query.rows(connection, {"kind": kind}, batch=2)) == expected and len(expected) == 3


def test_a_reader_that_stops_early_closes_the_cursor_and_the_connection_reads_on(connection: Connection) -> None:
    query = DriverQuery(select(items.c.id).order_by(items.c.id))
    rows = query.rows(connection, {}, batch=5)
    assert [next(rows) for _ in range(3)] == [(0,), (1,), (2,)]
    rows.close()
    assert sum(1 for _ in query.rows(connection, {}, batch=7)) == 50
