"""A local HTTP server for notifier tests: records every request and answers from a script."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answers to the next requests, in order; then 200
        self.hold = threading.Event()  # while `holding`, a request waits for this event
        self.holding = False
        self.arrived = threading.Condition()
        self.url = ""

    def bodies(self) -> list[Any]:
        return [request["json"] for request in self.requests if request["status"] < 400]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} requests arrived, expected {count}")


@contextmanager
def recording_server() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if recorder.holding:
                recorder.hold.wait(10)
            status = recorder.statuses.pop(0) if recorder.statuses else 200
            with recorder.arrived:
                recorder.requests.append(
                    {"path": self.path, "json": json.loads(body or b"null"), "status": status,
                     "content_type": self.headers.get("Content-Type")}
                )  # fmt: skip
                recorder.arrived.notify_all()
            answer = b'{"ok": true}' if status < 400 else b'{"ok": false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
