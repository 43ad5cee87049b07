"""moto's S3 server, answering one request at a time: `python tests/moto_serialized.py HOST PORT`.

moto checks `If-None-Match` / `If-Match` and then stores the object in two steps with no lock between
them, so two conditional PUTs on one key that arrive together can both pass (S3 itself decides them
atomically). Serialising requests makes each conditional write atomic, as on S3, so the tests that race
writers measure our code, not the emulator's gap. Requests are small and local: the cost is negligible.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:  # the whole response is produced under the lock
            return list(app(environ, start_response))

    return one_at_a_time


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
