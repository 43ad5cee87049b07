"""A throwaway PostgreSQL server on 127.0.0.1 for the tests, and a fresh database per test.

The server uses the PostgreSQL 15 binaries of Debian's `postgresql` package (not on PATH). initdb
and pg_ctl refuse to run as root, so as root they run as the `postgres` user, on a temporary data
folder owned by it. The server starts once per test session and is stopped at its end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PG_BIN", "PostgresServer", "postgres_server", "postgres_url"]

PG_BIN = Path(os.environ.get("DOTFLOW_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresServer:
    def __init__(self) -> None:
        if not (PG_BIN / "pg_ctl").is_file():
            raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}: apt-get install -y postgresql")
        self.folder = Path(tempfile.mkdtemp(prefix="dotflow-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")
            os.chmod(self.folder, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """CREATE DATABASE with a fresh name; its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database of its own on the session's server."""
    return postgres_server.new_database()
