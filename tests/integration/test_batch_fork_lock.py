"""A process forked while a BatchStorage holds its folder's lock does not keep the lock: once the
parent closes the storage, the folder can be opened again although the child still runs (the
workers of a killed `parallel` run live on for a moment). Closing the child's copy of the lock's
descriptor releases nothing in the parent. Real forks; each child waits on a pipe, then `_exit`s."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dotflow.providers import BatchStorage, StorageFile
from dotflow.storage.batch_log import LockedFolderError

pytestmark = pytest.mark.slow  # forks

REFUSED, OPENED = 3, 4


class Child:
    """A forked child that runs `body` once the parent says go, and exits with its return code."""

    def __init__(self, body: Callable[[], int] = lambda: 0) -> None:
        read, self._go = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing of pytest runs here
            code = 1
            try:
                os.close(self._go)
                os.read(read, 1)
                code = body()
            finally:
                os._exit(code)
        os.close(read)

    def finish(self) -> int:
        os.write(self._go, b"g")
        os.close(self._go)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def open_folder(path: Path) -> int:
    try:
        BatchStorage(StorageFile(path=path)).close()
    except LockedFolderError:
        return REFUSED
    return OPENED


def test_a_forked_child_does_not_keep_the_folder_locked_after_the_parent_closes(tmp_path: Path) -> None:
    batch = BatchStorage(StorageFile(path=tmp_path))
    batch.post("a", "v1")
    child = Child()  # alive, with whatever it inherited, until finish()
    try:
        batch.close()
        again = BatchStorage(StorageFile(path=tmp_path))  # LockedFolderError if the child kept the lock
        assert again.get("a").storage == "v1"
        again.close()
    finally:
        assert child.finish() == 0


def test_the_parent_keeps_the_lock_while_a_forked_child_runs(tmp_path: Path) -> None:
    batch = BatchStorage(StorageFile(path=tmp_path))
    try:
        child = Child(lambda: open_folder(tmp_path))
        assert child.finish() == REFUSED  # the parent's lock holds in the child's eyes
        assert open_folder(tmp_path) == REFUSED  # and after the child closed its copy and exited
    finally:
        batch.close()
    assert open_folder(tmp_path) == OPENED
