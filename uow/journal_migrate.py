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
    "known_revisions",
    "mismatch",
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


def ensure_schema(engine: Engine, *, create: bool = True) -> None:
    """Create a new (or empty) SQLite database at head, or check that an existing database is at head.

    `create=False` (for reading only): nothing is ever created; a database without the tables is refused.
    """
    with _lock:
        if create and is_new_sqlite(engine):
            upgrade(engine)
        else:
            found = current_revision(engine)
            wanted = head_revision()
            if found != wanted:
                raise SchemaError(mismatch(engine, found, wanted))


def known_revisions() -> list[str]:
    """Every revision this version's migrations know, oldest first."""
    from alembic.script import ScriptDirectory

    return [script.revision for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))]


def mismatch(engine: Engine, found: str | None, wanted: str) -> str:
    """Why the database is not usable as it is, and (when it can be) the command that upgrades it.

    The command can be pasted as printed: it names the URL when it holds no password, else it
    refers to $DOTFLOW_JOURNAL_URL (a masked password could not be pasted).
    """
    url = engine.url.render_as_string(hide_password=True)
    if found is not None and found not in known_revisions():
        return (
            f"database {url} is at revision {found!r}, which this version of dotflow does not know: it was "
            f"written by a newer (or another) version of dotflow; use that version, this one knows revisions "
            f"up to {wanted!r}"
        )
    state = "has no dotflow tables" if found is None else f"is at revision {found!r}"
    if engine.url.password:
        command = "set DOTFLOW_JOURNAL_URL to its URL, then run `dotflow journal upgrade`"
    else:
        command = f"run `dotflow journal upgrade --journal '{url}'`"
    return f"database {url} {state}; this dotflow needs revision {wanted!r}: {command}"
