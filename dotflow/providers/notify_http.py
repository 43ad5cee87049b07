"""`HttpNotifier`: what NotifyTelegram and NotifyDiscord share: deliver JSON messages over HTTP, off the task.

A task's status change only puts a message on a queue; one daemon thread per notifier posts them in
order with `requests`: a timeout per request and retries with backoff on connection errors, 429 and 5xx
(urllib3's `Retry`, honouring `Retry-After`). A message that still cannot be delivered is logged on the
"dotflow" logger and dropped: a notification never fails or blocks a task. So is a message that finds
the queue full (`max_pending`). `flush(timeout)` waits until the queue is empty; it runs by itself when
the interpreter exits and at the end of a child process's tasks, so queued messages are not lost there.

Secrets (a bot token, a webhook URL) are passed to `HttpNotifier.__init__` as `secrets`: they never
appear in a log line, an error message or a repr (each occurrence is replaced by "***").
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from typing import Any

from dotflow.abc.notify import Notify

__all__ = ["HttpNotifier"]

logger = logging.getLogger("dotflow")
RETRY_STATUSES = (429, 500, 502, 503, 504)


class HttpNotifier(Notify):
    service = "HTTP"

    def __init__(
        self,
        *,
        secrets: list[str],
        timeout: float,
        retries: int,
        backoff: float,
        max_pending: int = 1000,
    ) -> None:
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if type(retries) is not int or retries < 0:
            raise ValueError(f"retries must be a whole number of at least 0, not {retries!r}")
        self._secrets = [secret for secret in secrets if secret]
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._session = _session(retries, backoff)
        self._pending: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(max_pending)
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        _LIVE.add(self)

    # -- what a subclass provides ------------------------------------------------------------------

    def wants(self, task: Any) -> bool:
        raise NotImplementedError

    def request(self, task: Any) -> tuple[str, dict[str, Any]]:
        """(url, JSON body) of the message for this status change."""
        raise NotImplementedError

    # -- Notify ------------------------------------------------------------------------------------

    def hook_status_task(self, task: Any) -> None:
        try:
            if not self.wants(task):
                return
            message = self.request(task)
        except Exception as exc:  # building the message must not fail the task either
            logger.error("%s notification not sent: %s", self.service, self.redact(f"{type(exc).__name__}: {exc}"))
            return
        try:
            self._pending.put_nowait(message)
        except queue.Full:
            logger.error("%s notification dropped: %d messages are already waiting", self.service, self._pending.qsize())
            return
        self._ensure_sender()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was sent or given up; False if `timeout` (seconds) ran out."""
        done = threading.Event()

        def wait() -> None:
            self._pending.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    # -- delivery ----------------------------------------------------------------------------------

    def _ensure_sender(self) -> None:
        with self._sender_lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(target=self._send_all, name=f"dotflow-notify-{self.service}", daemon=True)
                self._sender.start()

    def _send_all(self) -> None:
        while True:
            try:
                message = self._pending.get(timeout=5.0)
            except queue.Empty:
                with self._sender_lock:  # idle: end; the next message starts a new sender
                    if self._pending.empty():
                        self._sender = None
                        return
                continue
            try:
                if message is not None:
                    self._send(*message)
            finally:
                self._pending.task_done()

    def _send(self, url: str, body: dict[str, Any]) -> None:
        try:
            response = self._session.post(url, json=body, timeout=self.timeout)
        except Exception as exc:  # connection refused, timeout, retries exhausted, ...
            logger.error("%s notification not sent: %s", self.service, self.redact(f"{type(exc).__name__}: {exc}"))
            return
        if response.status_code >= 400:
            logger.error(
                "%s notification not sent: HTTP %d %s", self.service, response.status_code, self.redact(response.text[:200])
            )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _session(retries: int, backoff: float) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    policy = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"POST"}),  # a notification sent twice is better than none
        respect_retry_after_header=backoff > 0,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_LIVE: weakref.WeakSet[HttpNotifier] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for notifier in list(_LIVE):
        notifier.flush(timeout=notifier.timeout * (notifier.retries + 1) + 1)
