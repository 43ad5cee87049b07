"""Alembic environment for the journal's and the SQL storage's tables (both defined in `uow`).

This folder is the repository's `migrations/` and, in an installed copy, `uow/migrations` (the
wheel maps it in). It imports only `uow`, never `dotflow`, so the journal runs without `dotflow`.

The URL comes from `-x url=...`, else DOTFLOW_JOURNAL_URL, else `sqlalchemy.url` in alembic.ini.
A caller that already holds a connection passes it as `config.attributes["connection"]`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url

from uow.checkpoint_schema import metadata as storage_metadata
from uow.journal_schema import metadata as journal_metadata

config = context.config

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = [journal_metadata, storage_metadata]


def database_url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("DOTFLOW_JOURNAL_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("no database URL: pass `-x url=...` or set DOTFLOW_JOURNAL_URL")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # psycopg 3 is the project's PostgreSQL driver
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the caller's connection, or on a fresh engine (NullPool) for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    connectable = create_engine(database_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        _run(connection)
    connectable.dispose()


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
