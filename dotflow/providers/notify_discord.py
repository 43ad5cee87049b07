"""`NotifyDiscord`: a Discord webhook embed per task status change (or per change to one status).

`NotifyDiscord(webhook_url, notification_type=None, show_result=False, timeout=1.5)` as in dotflow 1.0.1,
plus `retries` (3) and `backoff` (seconds, 0.5). The webhook URL is the whole endpoint (a test passes
a local server's). The embed: title = the status with its symbol, a colour per status, the workflow and
task ids, a "Result" field with the task's JSON when `show_result` (1024 characters at most) and an
"Error" field with the last error of a failed task. Delivery never blocks or fails a task (see
`notify_http`); the webhook URL, which holds the webhook's token, never appears in logs, errors or the repr.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from dotflow.core.types.status import TypeStatus
from dotflow.providers.notify_http import HttpNotifier

__all__ = ["NotifyDiscord"]

FIELD_LIMIT = 1024  # Discord's limit on an embed field's value


class NotifyDiscord(HttpNotifier):
    service = "Discord"

    COLORS = {
        TypeStatus.COMPLETED: 0x4CAF50,
        TypeStatus.FAILED: 0xF44336,
        TypeStatus.RETRY: 0xFF9800,
        TypeStatus.IN_PROGRESS: 0x2196F3,
        TypeStatus.NOT_STARTED: 0x9E9E9E,
        TypeStatus.PAUSED: 0x607D8B,
    }

    def __init__(
        self,
        webhook_url: str,
        notification_type: str | None = None,
        show_result: bool = False,
        timeout: float = 1.5,
        *,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(webhook_url, str) or urlsplit(webhook_url).scheme not in ("http", "https"):
            raise ValueError("NotifyDiscord needs the webhook's http(s) URL")
        path = urlsplit(webhook_url).path  # /api/webhooks/<id>/<token>: the secret part
        secrets = [webhook_url] + ([path] if len(path) > 1 else [])
        super().__init__(secrets=secrets, timeout=timeout, retries=retries, backoff=backoff)
        self.webhook_url = webhook_url
        self.notification_type = notification_type
        self.show_result = show_result

    def __repr__(self) -> str:
        return f"NotifyDiscord(webhook_url='***', notification_type={self.notification_type!r})"

    def wants(self, task: Any) -> bool:
        return not self.notification_type or self.notification_type == task.status

    def request(self, task: Any) -> tuple[str, dict[str, Any]]:
        return self.webhook_url, {"embeds": [self.embed(task)]}

    def embed(self, task: Any) -> dict[str, Any]:
        fields: list[dict[str, str]] = []
        if self.show_result:
            fields.append({"name": "Result", "value": _clip(f"```json\n{json.dumps(task.result(max=FIELD_LIMIT))}```")})
        if task.status == TypeStatus.FAILED and task.errors:
            last = task.errors[-1]
            fields.append({"name": "Error", "value": _clip(f"`{last.exception}`: {last.message}")})
        return {
            "title": f"{TypeStatus.get_symbol(task.status)} {task.status}",
            "color": self.COLORS.get(task.status, 0x9E9E9E),
            "description": f"`{task.workflow_id}` — Task {task.task_id}",
            "fields": fields,
        }


def _clip(text: str) -> str:
    return text if len(text) <= FIELD_LIMIT else text[: FIELD_LIMIT - 1] + "…"
