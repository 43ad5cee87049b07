"""Schema revisions of the project's SQL databases (journal and SQL storage), run through Alembic.

`ensure_schema(engine)` is what the journal and `StorageSQL` call before first use:

* a SQLite file that does not exist yet (or an in-memory database) is created at the head revision;
* any other database must already be at head; otherwise `SchemaError` says which revision it is at
  and which command upgrades it. Nothing creates or alters tables in an existing database silently.

The migration scripts live in `migrations/` next to `alembic.ini` at the root of the repository; the
wheel ships them inside this package as `uow/migrations`, which is used when it exists.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "MIGRATIONS",
    "SchemaError",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "is_new_sqlite",
    "upgrade",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when running from one
_PACKAGED = Path(__file__).resolve().parent / "migrations"  # an installed copy (see setup.py)
MIGRATIONS = _PACKAGED if (_PACKAGED / "env.py").is_file() else PROJECT_ROOT / "migrations"

_lock = threading.Lock()  # one thread of this process creates a new database at a time


class SchemaError(RuntimeError):
    """The database is not at the schema revision this version needs."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """An Alembic `Config` for the project's migrations, on `url` or on an open `connection`."""
    try:
        from alembic.config import Config
    except ModuleNotFoundError as exc:
        raise ImportError("schema migrations need Alembic: pip install 'dotflow-uow[sql]'") from exc
    if not (MIGRATIONS / "env.py").is_file():
        raise SchemaError(f"the migration scripts are missing: expected {MIGRATIONS}/env.py")
    ini = MIGRATIONS.parent / "alembic.ini"  # a checkout's (an installed copy has none)
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no dotflow tables); reads only, so it takes no lock."""
    from alembic.runtime.migration import MigrationContext

    from uow.sql_engine import read_only

    with read_only(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` on `engine` (one transaction on each database)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), revision)


def is_new_sqlite(engine: Engine) -> bool:
    """True for a SQLite database that does not exist yet (a missing file, or in memory), or is empty.

    An empty file (no table at all) is what a process killed while creating the database leaves:
    the creation is one transaction, so it is either whole or absent, and an empty file is new.
    """
    if engine.url.get_backend_name() != "sqlite":
        return False
    database = engine.url.database
    if database in (None, "", ":memory:") or not os.path.exists(database):
        return True
    from uow.sql_engine import read_only

    with read_only(engine) as connection:
        tables: int = connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
    return tables == 0


def ensure_schema(engine: Engine) -> None:
    """Create a new (or empty) SQLite database at head, or check that an existing database is at head."""
    with _lock:
        if is_new_sqlite(engine):
            upgrade(engine)
        else:
            found = current_revision(engine)
            wanted = head_revision()
            if found != wanted:
                raise SchemaError(_mismatch(engine, found, wanted))


def _mismatch(engine: Engine, found: str | None, wanted: str) -> str:
    url = engine.url.render_as_string(hide_password=True)
    state = "has no dotflow tables" if found is None else f"is at revision {found!r}"
    return (
        f"database {url} {state}; this dotflow needs revision {wanted!r}: "
        f"run `dotflow journal upgrade --url '{url}'` (or `alembic -x url='{url}' upgrade head`)"
    )
