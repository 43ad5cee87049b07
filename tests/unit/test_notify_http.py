"""NotifyTelegram and NotifyDiscord through Config and DotFlow, against a local HTTP server."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.types.status import TypeStatus
from dotflow.providers import NotifyDiscord, NotifyTelegram
from tests.http_recorder import Recorder, recording_server

TOKEN = "123456:SECRET-bot-token"


@action
def ok():
    return {"rows": 3}


@action
def broken():
    raise RuntimeError("disk full")


@pytest.fixture
def server() -> Iterator[Recorder]:
    with recording_server() as recorder:
        yield recorder


def telegram(server: Recorder, **options: object) -> NotifyTelegram:
    return NotifyTelegram(token=TOKEN, chat_id=42, base_url=server.url, backoff=0, **options)  # type: ignore[arg-type]


def run(notify: object, *steps: object, mode: str = "sequential") -> DotFlow:
    flow = DotFlow(config=Config(notify=notify), workflow_id=str(uuid.UUID(int=7)))  # type: ignore[arg-type]
    flow.task.add(step=list(steps))
    flow.start(mode=mode, keep_going=True)
    return flow


def test_telegram_sends_every_status_change(server: Recorder) -> None:
    notify = telegram(server)
    run(notify, ok)
    assert notify.flush(10)
    assert [r["path"] for r in server.requests] == [f"/bot{TOKEN}/sendMessage"] * 3
    assert server.requests[0]["content_type"] == "application/json"
    texts = [body["text"] for body in server.bodies()]
    assert [text.splitlines()[0] for text in texts] == ["⚪ Not started", "🔵 In progress", "✅ Completed"]
    body = server.bodies()[-1]
    assert body["chat_id"] == 42 and body["parse_mode"] == "markdown"
    assert texts[-1].splitlines()[-1] == f"`{uuid.UUID(int=7)}` — Task 0-ok"


def test_telegram_filters_by_status_and_reports_the_error(server: Recorder) -> None:
    notify = telegram(server, notification_type=TypeStatus.FAILED, show_result=True)
    run(notify, ok, broken)
    assert notify.flush(10)
    assert len(server.bodies()) == 1
    text = server.bodies()[0]["text"]
    assert text.startswith("❌ Failed\n```json\n{")
    assert "`RuntimeError`: disk full" in text and "Task 1-broken" in text


def test_retries_5xx_then_delivers(server: Recorder) -> None:
    server.statuses = [503, 502]
    notify = telegram(server, notification_type=TypeStatus.COMPLETED)
    run(notify, ok)
    assert notify.flush(10)
    assert [r["status"] for r in server.requests] == [503, 502, 200]
    assert server.bodies()[0]["text"].startswith("✅ Completed")


def test_a_slow_service_never_holds_up_the_tasks(server: Recorder) -> None:
    server.holding = True  # the server keeps every request waiting until released
    notify = telegram(server, timeout=30)
    began = time.monotonic()
    flow = run(notify, ok, ok)
    assert time.monotonic() - began < 5
    assert [task.status for task in flow.result_task()] == ["Completed", "Completed"]
    server.hold.set()
    assert notify.flush(10)
    assert len(server.bodies()) == 6


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_service_that_is_down_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    notify = NotifyTelegram(token=TOKEN, chat_id=1, base_url=f"http://127.0.0.1:{closed_port()}", retries=1, backoff=0)
    with caplog.at_level(logging.ERROR, logger="dotflow"):
        flow = run(notify, ok)
        assert notify.flush(10)
    assert flow.result_task()[0].status == "Completed"
    assert "Telegram notification not sent" in caplog.text and "ConnectionError" in caplog.text
    assert TOKEN not in caplog.text and "SECRET" not in caplog.text
    assert "***" in caplog.text
    assert TOKEN not in repr(notify) and TOKEN not in str(notify)


def test_an_error_answer_is_logged_without_the_secret(server: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    server.statuses = [403]
    notify = NotifyDiscord(webhook_url=f"{server.url}/api/webhooks/1/{TOKEN}", notification_type=TypeStatus.COMPLETED)
    with caplog.at_level(logging.ERROR, logger="dotflow"):
        run(notify, ok)
        assert notify.flush(10)
    assert "Discord notification not sent: HTTP 403" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in repr(notify)


def test_discord_embeds(server: Recorder) -> None:
    notify = NotifyDiscord(webhook_url=f"{server.url}/api/webhooks/9/{TOKEN}", show_result=True, backoff=0)
    run(notify, broken)
    assert notify.flush(10)
    assert {r["path"] for r in server.requests} == {f"/api/webhooks/9/{TOKEN}"}
    embeds = [body["embeds"][0] for body in server.bodies()]
    assert [e["title"] for e in embeds] == ["⚪ Not started", "🔵 In progress", "❌ Failed"]
    failed = embeds[-1]
    assert failed["color"] == 0xF44336 and failed["description"].endswith("Task 0-broken")
    assert [f["name"] for f in failed["fields"]] == ["Result", "Error"]
    assert failed["fields"][1]["value"] == "`RuntimeError`: disk full"
    assert all(len(f["value"]) <= 1024 for f in failed["fields"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="token"):
        NotifyTelegram(token="", chat_id=1)
    with pytest.raises(ValueError, match="webhook"):
        NotifyDiscord(webhook_url="discord")
    with pytest.raises(ValueError, match="timeout"):
        NotifyTelegram(token="t", chat_id=1, timeout=0)
    assert NotifyTelegram(token="t", chat_id=1).base_url == "https://api.telegram.org"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_messages_from_child_processes_are_delivered(server: Recorder, mode: str) -> None:
    notify = telegram(server, notification_type=TypeStatus.COMPLETED)
    flow = DotFlow(config=Config(notify=notify))
    flow.task.add(step=ok, group_name="a").add(step=ok, group_name="b")
    flow.start(mode=mode)
    server.wait_for(2)
    assert sorted(body["text"].splitlines()[-1][-4:] for body in server.bodies()) == ["0-ok", "1-ok"]
