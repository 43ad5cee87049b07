from __future__ import annotations

import unittest

import pytest

from dotflow.abc.storage import Storage
from dotflow.storage.gcs import StorageGCS
from dotflow.testing import StorageContract
from tests.servers import LocalServer, gcs_client, new_bucket_name

pytestmark = pytest.mark.slow


class TestStorageGCS(StorageContract, unittest.TestCase):
    """The contract on fake-gcs-server, over HTTP; listings paginated 10 keys at a time."""

    server: LocalServer

    @pytest.fixture(autouse=True)
    def _server(self, fake_gcs_server: LocalServer) -> None:
        self.server = fake_gcs_server

    def make_storage(self) -> Storage:
        client = gcs_client(self.server.url)
        bucket = new_bucket_name("gcs")
        client.create_bucket(bucket)
        return StorageGCS(bucket=bucket, prefix="runs/", client=client, clock=self.clock, page_size=10)
