"""`NotifyTelegram`: a Telegram message per task status change (or per change to one status).

`NotifyTelegram(token, chat_id, notification_type=None, show_result=False, timeout=1.5)` as in dotflow
1.0.1, plus `retries` (3), `backoff` (seconds, 0.5) and `base_url` (the Bot API's, by default; tests
point it at a local server). The message: the status with its symbol, the task's result as JSON when
`show_result` (at most 4000 characters), the last error of a failed task, and the workflow and task ids,
sent with `sendMessage` in Markdown. Delivery never blocks or fails a task (see `notify_http`); the token
never appears in logs, errors or the repr.
"""

from __future__ import annotations

import json
from typing import Any

from dotflow.core.types.status import TypeStatus
from dotflow.providers.notify_http import HttpNotifier

__all__ = ["NotifyTelegram"]

TELEGRAM_API = "https://api.telegram.org"


class NotifyTelegram(HttpNotifier):
    service = "Telegram"

    def __init__(
        self,
        token: str,
        chat_id: int,
        notification_type: str | None = None,
        show_result: bool = False,
        timeout: float = 1.5,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        base_url: str = TELEGRAM_API,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("NotifyTelegram needs the bot's token (a non-empty string)")
        super().__init__(secrets=[token], timeout=timeout, retries=retries, backoff=backoff)
        self.token = token
        self.chat_id = chat_id
        self.notification_type = notification_type
        self.show_result = show_result
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"NotifyTelegram(chat_id={self.chat_id!r}, notification_type={self.notification_type!r}, "
            f"base_url={self.base_url!r})"
        )

    def wants(self, task: Any) -> bool:
        return not self.notification_type or self.notification_type == task.status

    def request(self, task: Any) -> tuple[str, dict[str, Any]]:
        url = f"{self.base_url}/bot{self.token}/sendMessage"
        return url, {"chat_id": self.chat_id, "text": self.message(task), "parse_mode": "markdown"}

    def message(self, task: Any) -> str:
        lines = [f"{TypeStatus.get_symbol(task.status)} {task.status}"]
        if self.show_result:
            lines.append(f"```json\n{json.dumps(task.result(max=4000))}```")
        if task.status == TypeStatus.FAILED and task.errors:
            last = task.errors[-1]
            lines.append(f"`{last.exception}`: {last.message}")
        lines.append(f"`{task.workflow_id}` — Task {task.task_id}")
        return "\n".join(lines)
