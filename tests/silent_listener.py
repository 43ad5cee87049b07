"""A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte: a hung server
(or a proxy whose upstream hangs), as a client sees it. The connections are held open until `close()`."""

from __future__ import annotations

import socket
import threading

__all__ = ["SilentListener"]


class SilentListener:
    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-listener", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self._held.append(connection)  # read nothing, answer nothing

    def close(self) -> None:
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux); close() alone does not
        except OSError:
            pass
        self._socket.close()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
