from __future__ import annotations

import unittest

import pytest

from dotflow.abc.storage import Storage
from dotflow.storage.s3 import StorageS3
from dotflow.testing import StorageContract
from tests.servers import LocalServer, new_bucket_name, s3_client

pytestmark = pytest.mark.slow


class TestStorageS3(StorageContract, unittest.TestCase):
    """The contract on moto's S3 server, over HTTP; listings paginated 10 keys at a time."""

    server: LocalServer

    @pytest.fixture(autouse=True)
    def _server(self, moto_server: LocalServer) -> None:
        self.server = moto_server

    def make_storage(self) -> Storage:
        client = s3_client(self.server.url)
        bucket = new_bucket_name("s3")
        client.create_bucket(Bucket=bucket)
        return StorageS3(bucket=bucket, prefix="runs/", client=client, clock=self.clock, page_size=10)
