from __future__ import annotations

import tempfile
import unittest

from dotflow.abc.storage import Storage
from dotflow.storage.file import StorageFile
from dotflow.testing import StorageContract


class TestStorageFile(StorageContract, unittest.TestCase):
    def make_storage(self) -> Storage:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        return StorageFile(path=folder.name, clock=self.clock)
