"""Test helpers shared by the engine tests: storages that record what the engine asked of them, and a
snapshot of a folder (to show a command wrote nothing)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from dotflow import action
from dotflow.abc.storage import Checkpoint, Storage
from dotflow.core.context import Context
from dotflow.storage.memory import StorageDefault

IO_METHODS = (
    "post", "post_if", "get", "read_checkpoint", "delete", "delete_if", "delete_prefix", "list_keys", "clear",
    "atomic_swap",
)  # fmt: skip


class CountingStorage(StorageDefault):
    """StorageDefault that appends one line per storage call to a log file.

    A file (opened with O_APPEND) counts calls made in any process: the parent, a thread, or a
    forked child. `calls()` returns a Counter of method names; `log()` the (method, key) lines.
    """

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = Path(log_path)
        self.log_path.write_text("")

    def _record(self, method: str, key: str = "") -> None:
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"{os.getpid()} {method} {key}\n".encode())
        finally:
            os.close(fd)

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self._record("post", key)
        super().post(key=key, context=context, ttl=ttl, fingerprint=fingerprint)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        self._record("post_if", key)
        return super().post_if(key=key, context=context, version=version, ttl=ttl, fingerprint=fingerprint)

    def delete_if(self, key: str, *, version: str | None) -> bool:
        self._record("delete_if", key)
        return super().delete_if(key=key, version=version)

    def get(self, key: str) -> Context:
        self._record("get", key)
        return super().get(key=key)

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        self._record("read_checkpoint", key)
        return super().read_checkpoint(key=key)

    def delete(self, key: str) -> bool:
        self._record("delete", key)
        return super().delete(key=key)

    def delete_prefix(self, prefix: str) -> int:
        self._record("delete_prefix", prefix)
        return super().delete_prefix(prefix=prefix)

    def list_keys(self, prefix: str = "") -> list[str]:
        self._record("list_keys", prefix)
        return super().list_keys(prefix=prefix)

    def log(self) -> list[tuple[str, str]]:
        lines = self.log_path.read_text().splitlines()
        return [(line.split(" ")[1], line.split(" ", 2)[2]) for line in lines]

    def calls(self) -> Counter:
        return Counter(method for method, _ in self.log())

    def writes(self) -> int:
        """Writes of any kind: `post`, and the conditional `post_if` used on resume."""
        calls = self.calls()
        return calls["post"] + calls["post_if"]

    def reads(self) -> int:
        calls = self.calls()
        return calls["get"] + calls["read_checkpoint"]

    def reset_log(self) -> None:
        self.log_path.write_text("")


class FlakyStorage(StorageDefault):
    """StorageDefault whose next `failures` posts raise `error`; counts posts that reached it."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures = failures
        self.error = error
        self.post_attempts = 0
        self._lock = threading.Lock()

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        with self._lock:
            self.post_attempts += 1
            if self.failures > 0:
                self.failures -= 1
                raise self.error
        super().post(key=key, context=context, ttl=ttl, fingerprint=fingerprint)


class MinimalStorage(Storage):
    """A 1.0.1-style custom storage with only the three required methods."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.data[key] = context

    def get(self, key: str) -> Context:
        return self.data.get(key, Context())

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"


# Steps shared by the I/O-counting tests (tests/integration/test_storage_io.py, tests/cloud/test_cloud_requests.py).


@action
def ok(previous_context: Context) -> dict[str, int]:
    """Counts up from its predecessor's {"n": ...}."""
    return {"n": (previous_context.storage or {}).get("n", 0) + 1}


@action
def boom() -> None:
    raise RuntimeError("boom")


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder`: size and modification time (nanoseconds)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root, name)
            info = path.stat()
            found[str(path.relative_to(folder))] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return found
