"""dotflow 1.0.1's documented helper modules: dotflow.utils, dotflow.logging, dotflow.settings,
dotflow.core.config_file, dotflow.main and the dotflow.abc file/http/tcp interfaces."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest


def test_utils_exports_1_0_1_names() -> None:
    import dotflow.utils as utils
    from dotflow.utils import error_handler, tools

    assert set(utils.__all__) == {
        "basic_callback", "basic_function", "hostname", "message_error", "read_file", "traceback_error", "write_file"
    }
    assert utils.write_file is tools.write_file and utils.traceback_error is error_handler.traceback_error
    assert isinstance(tools.hostname(), str) and tools.hostname()


def test_write_file_writes_json_and_read_file_reads_it_back(tmp_path: Path) -> None:
    from dotflow.utils import read_file, write_file

    target = tmp_path / "out.json"
    write_file(path=str(target), content={"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert read_file(path=target) == {"a": [1, 2]}
    write_file(path=target, content="x", mode="a")
    assert read_file(target) == '{"a": [1, 2]}"x"'  # not JSON any more: its text
    assert read_file(tmp_path / "missing") is None
    assert read_file(str(target)) == read_file(target)


def test_write_file_refuses_what_json_cannot_hold(tmp_path: Path) -> None:
    from dotflow.utils import write_file

    with pytest.raises(TypeError, match="object is not JSON data"):
        write_file(tmp_path / "x", object())
    assert not (tmp_path / "x").exists()  # nothing written, not even str(value)


def test_error_handler() -> None:
    from dotflow.utils import message_error, traceback_error

    try:
        raise ValueError("bad input")
    except ValueError as error:
        text = traceback_error(error)
        assert text.startswith("Traceback") and text.endswith("ValueError: bad input")
        assert message_error(error) == "bad input"


def test_logging_module_has_one_console_handler_however_often_imported() -> None:
    import dotflow.logging as dlog

    importlib.reload(dlog)
    importlib.reload(dlog)
    ours = [h for h in dlog.logger.handlers if getattr(h, "_dotflow_console", False)]
    try:
        assert dlog.logger.name == "dotflow" and dlog.logger.level == logging.INFO
        assert len(ours) == 1
        assert ours[0].formatter is not None and ours[0].formatter._fmt == dlog.Settings.LOG_FORMAT
    finally:
        for handler in ours:
            dlog.logger.removeHandler(handler)
        dlog.logger.setLevel(logging.NOTSET)


def test_settings_attributes() -> None:
    from dotflow.settings import Settings

    assert Settings.LOG_PROFILE == "dotflow"
    assert Settings.LOG_PATH == Settings.START_PATH / "flow.log"
    assert Settings.LOG_FILE_NAME == Path("flow.log") and Settings.GITIGNORE == Path(".gitignore")
    assert Path(Settings.TEMPLATE_REPO).is_dir()  # the shipped template, not a remote repository
    for name in ("ERROR_ALERT", "INFO_ALERT", "WARNING_ALERT", "QUESTION_ALERT"):
        assert getattr(Settings, name).startswith(Settings.ICON)
    assert Settings.TEMPLATE_BRANCH == "master" and Settings.TEMPLATE_CLOUD_DIR == "cloud"
    assert Settings.STEP_ICON == ":gear:"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOTFLOW_TEST_TOKEN", raising=False)
    return tmp_path


def test_config_file_round_trip_and_precedence(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dotflow.core import config_file

    assert config_file.config_path() == home / ".dotflow" / "config.json"
    assert config_file.load_cloud_config() == {}
    assert config_file.resolve("token", "DOTFLOW_TEST_TOKEN") is None
    path = config_file.save_cloud_config(token="t-1", base_url="http://127.0.0.1:9")
    assert path == config_file.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config_file.load_cloud_config() == {"base_url": "http://127.0.0.1:9", "token": "t-1"}
    assert config_file.resolve("token", "DOTFLOW_TEST_TOKEN") == "t-1"
    monkeypatch.setenv("DOTFLOW_TEST_TOKEN", "")  # empty: the file still wins
    assert config_file.resolve("token", "DOTFLOW_TEST_TOKEN") == "t-1"
    monkeypatch.setenv("DOTFLOW_TEST_TOKEN", "from-env")
    assert config_file.resolve("token", "DOTFLOW_TEST_TOKEN") == "from-env"
    assert config_file.clear_cloud_config() is True
    assert config_file.clear_cloud_config() is False


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"cloud": "x"}', '{"cloud": {"token": 5, "base_url": "u"}}']
)
def test_config_file_malformed_reads_as_empty_or_keeps_strings(home: Path, text: str) -> None:
    from dotflow.core import config_file

    config_file.config_path().parent.mkdir(parents=True)
    config_file.config_path().write_text(text)
    assert config_file.load_cloud_config() in ({}, {"base_url": "u"})


def test_main_runs_the_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dotflow
    from dotflow.main import main

    monkeypatch.setattr("sys.argv", ["dotflow", "--version"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    assert dotflow.__version__ in capsys.readouterr().out


def test_abc_file_http_tcp() -> None:
    from dotflow.abc.file import FileClient
    from dotflow.abc.http import HTTPRequest
    from dotflow.abc.tcp import TCPClient, TCPServer

    for abstract in (FileClient, HTTPRequest, TCPClient, TCPServer):
        with pytest.raises(TypeError):
            abstract("u", print)  # type: ignore[abstract,call-arg]

    class Files(FileClient):
        store: dict[str, str] = {}

        @classmethod
        def write(cls, path: str, content: str, mode: str, encoding: str) -> None:
            cls.store[path] = content

        @classmethod
        def read(cls, path: str) -> str:
            return cls.store[path]

    Files.write("p", "c", "w", "utf-8")
    assert Files.read("p") == "c"

    class Http(HTTPRequest):
        def request(self, method: str, body: dict[str, Any], params: dict[str, Any], headers: dict[str, Any]) -> None:
            self.context(method, self.url)

    seen: list[Any] = []
    Http("http://x", lambda *a: seen.append(a)).request("GET", {}, {}, {})
    assert seen == [("GET", "http://x")]

    class Server(TCPServer):
        async def receiver(self) -> None:
            self.context = self.handler("m")

        async def run(self) -> None:
            await self.receiver()

    server = Server("tcp://127.0.0.1:0", lambda m: m * 2)
    asyncio.run(server.run())
    assert server.context == "mm"

    class Client(TCPClient):
        def sender(self, content: dict[str, Any]) -> None:
            self.context = content

    client = Client("tcp://127.0.0.1:0")
    assert client.context is None
    client.sender({"a": 1})
    assert client.context == {"a": 1}
