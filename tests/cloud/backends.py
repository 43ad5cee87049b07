"""One small handle per cloud backend so tests can be written once for S3 and GCS.

A `Cloud` builds a fresh bucket, a storage on it (with any extra keyword), and reads or writes raw
objects through the SDK, the way another program (or dotflow 1.0.1) would.
"""

from __future__ import annotations

from typing import Any

from dotflow.storage.gcs import StorageGCS
from dotflow.storage.s3 import StorageS3
from tests.servers import LocalServer, gcs_client, new_bucket_name, s3_client

__all__ = ["Cloud", "GcsCloud", "S3Cloud", "storage_from_spec"]


class Cloud:
    name = ""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.bucket = new_bucket_name(self.name)
        self.create_bucket(self.bucket)

    def create_bucket(self, bucket: str) -> None:
        raise NotImplementedError

    def storage(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def put_raw(self, name: str, body: bytes) -> None:
        raise NotImplementedError

    def get_raw(self, name: str) -> bytes | None:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def spec(self) -> dict[str, str]:
        """What another process needs to build the same storage (see `storage_from_spec`)."""
        return {"backend": self.name, "url": self.server.url, "bucket": self.bucket}


class S3Cloud(Cloud):
    name = "s3"

    def __init__(self, server: LocalServer) -> None:
        self.client = s3_client(server.url)
        super().__init__(server)

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(Bucket=bucket)

    def storage(self, **kwargs: Any) -> StorageS3:
        kwargs.setdefault("client", s3_client(self.server.url))
        kwargs.setdefault("bucket", self.bucket)
        return StorageS3(**kwargs)

    def put_raw(self, name: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=body)

    def get_raw(self, name: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def names(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(item["Key"] for item in listed)


class GcsCloud(Cloud):
    name = "gcs"

    def __init__(self, server: LocalServer) -> None:
        self.client = gcs_client(server.url)
        super().__init__(server)

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(bucket)

    def storage(self, **kwargs: Any) -> StorageGCS:
        kwargs.setdefault("client", gcs_client(self.server.url))
        kwargs.setdefault("bucket", self.bucket)
        return StorageGCS(**kwargs)

    def put_raw(self, name: str, body: bytes) -> None:
        self.client.bucket(self.bucket).blob(name).upload_from_string(body)

    def get_raw(self, name: str) -> bytes | None:
        blob = self.client.bucket(self.bucket).get_blob(name)
        return None if blob is None else blob.download_as_bytes()

    def names(self) -> list[str]:
        return sorted(blob.name for blob in self.client.list_blobs(self.bucket))


def storage_from_spec(spec: dict[str, str], **kwargs: Any) -> Any:
    """Build, in any process, the storage a `Cloud.spec()` describes (or {"backend": "file", "path": ...})."""
    if spec["backend"] == "file":
        from dotflow.storage.file import StorageFile

        return StorageFile(path=spec["path"], **kwargs)
    if spec["backend"] == "s3":
        return StorageS3(bucket=spec["bucket"], client=s3_client(spec["url"]), **kwargs)
    return StorageGCS(bucket=spec["bucket"], client=gcs_client(spec["url"]), **kwargs)
