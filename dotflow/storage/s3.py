"""`StorageS3`: checkpoints as objects in an Amazon S3 bucket (or an S3-compatible service), via boto3.

    from dotflow.providers import StorageS3
    storage = StorageS3(bucket="my-bucket", prefix="dotflow/", region="eu-west-1")

Needs the `s3` extra (`pip install 'dotflow-uow[s3]'`; `aws` is an alias). Without `client=`, the
client is built by boto3 from `region`, `endpoint_url` and boto3's usual configuration (AWS_* variables,
~/.aws, instance roles), with botocore's "standard" retry mode: throttling, 5xx and connection errors
are retried by botocore itself with backoff; anything else (403, missing bucket, 412) is answered at
once. Construction checks the bucket with one HeadBucket, sent by a second client of its own with
short connect/read timeouts and 2 tries, so an endpoint that is down, or that accepts connections and
never answers, fails the start of a workflow within `startup_deadline` seconds (default 5) with one
`StorageError` naming it; reads and writes keep the standard policy above (60 s timeouts, 5 tries).
With `client=`, the check goes through that client, whose own configuration then decides how long
it may take.

Requests per operation: `post` one PutObject; `post_if` one conditional PutObject (If-None-Match: *
for "must not exist", If-Match: <ETag> otherwise; a 412 costs one GetObject to tell a lost race from
an expired object or from a retried write of our own); `get` / `read_checkpoint` one GetObject
(plus one for a 1.0.1 object's `.fingerprint`); `delete_if` one DeleteObject with If-Match (S3 has
supported conditional deletes since 2024-2025; an S3-compatible service that ignores If-Match on
DELETE would delete unconditionally). Listings are paginated (`page_size` keys per request), and since
S3 listings carry no metadata, `list_keys` and `delete_prefix` send one HeadObject per key to honour
TTLs. See `object_store` for keys, versions (the ETag) and TTL.

Leases (claims, `object_leases`): create one conditional PutObject (If-None-Match: *), read one
HeadObject (LastModified and the response's Date give the service's clock), renew one PutObject
with If-Match, release one DeleteObject with If-Match.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dotflow.core.exception import ModuleNotFound, StorageError
from dotflow.storage.object_leases import LeaseObject, http_date
from dotflow.storage.object_store import UNCONDITIONAL, Downloaded, Listed, ObjectStorage

__all__ = ["StorageS3"]

_PRECONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"403", "AccessDenied", "Forbidden"}
_RETRIES = {"mode": "standard", "total_max_attempts": 5}  # the first try included
# The bucket check at construction gives up sooner: an endpoint that is down is an error in seconds.
STARTUP_DEADLINE_SECONDS = 5.0
_STARTUP_TRIES = 2


class StorageS3(ObjectStorage):
    """Checkpoints in S3; see the module docstring."""

    service = "S3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "dotflow/",
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        clock: Callable[[], float] | None = None,
        page_size: int = 1000,
        startup_deadline: float = STARTUP_DEADLINE_SECONDS,
    ) -> None:
        """`startup_deadline`: seconds the bucket check at construction may take in all (its tries and
        their timeouts; botocore's pause between the two tries comes on top, under a second)."""
        super().__init__(bucket=bucket, prefix=prefix, clock=clock, page_size=page_size)
        if not startup_deadline > 0:
            raise ValueError(f"startup_deadline must be a number of seconds > 0, not {startup_deadline!r}")
        self.startup_deadline = float(startup_deadline)
        botocore = _import_sdk()
        self._errors = botocore.exceptions
        check_client = client
        if client is None:
            import boto3

            config = botocore.config.Config(retries=_RETRIES)
            client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)
            check_client = boto3.client(
                "s3", region_name=region, endpoint_url=endpoint_url, config=_startup_config(botocore, startup_deadline)
            )
        self._client = client
        self.endpoint_url = client.meta.endpoint_url
        self.region: str | None = region if region is not None else client.meta.region_name
        try:
            self._check_bucket(check_client)
        finally:
            if check_client is not client:
                check_client.close()

    def _check_bucket(self, client: Any) -> None:
        with self._translate("check"):
            client.head_bucket(Bucket=self.bucket)

    # ----------------------------------------------------------------------------------- primitives

    def _download(self, name: str, key: str) -> Downloaded | None:
        with self._translate("read", key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=name)
            except self._errors.ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return None
                raise
            return Downloaded(body=response["Body"].read(), version=response["ETag"])

    def _upload(self, name: str, key: str, data: bytes, metadata: dict[str, str], if_version: Any) -> bool:
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": name,
            "Body": data,
            "ContentType": "application/json",
            "Metadata": metadata,
        }
        if if_version is None:
            request["IfNoneMatch"] = "*"
        elif if_version is not UNCONDITIONAL:
            request["IfMatch"] = if_version
        with self._translate("write", key):
            try:
                self._client.put_object(**request)
            except self._errors.ClientError as exc:
                code = _code(exc)
                # If-Match on a missing object is answered 404 by some services, 412 by others.
                if code in _PRECONDITION_FAILED or (if_version is not UNCONDITIONAL and code in _NOT_FOUND):
                    return False
                raise
        return True

    def _lease_put(self, name: str, key: str, body: bytes, metadata: dict[str, str], if_version: str | None) -> str | None:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": body, "Metadata": metadata}
        if if_version is None:
            request["IfNoneMatch"] = "*"
        else:
            request["IfMatch"] = if_version
        with self._translate("write the lease of", key):
            try:
                response = self._client.put_object(**request)
            except self._errors.ClientError as exc:
                self._observe_response(exc.response)
                if _code(exc) in _PRECONDITION_FAILED | _NOT_FOUND:
                    return None
                raise
        self._observe_response(response)
        return str(response["ETag"])

    def _lease_head(self, name: str, key: str) -> LeaseObject | None:
        with self._translate("read the lease of", key):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=name)
            except self._errors.ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return None
                raise
        self._observe_response(head)
        modified = head.get("LastModified")
        written_at = None if modified is None else modified.timestamp()
        return LeaseObject(metadata=head.get("Metadata", {}), version=str(head["ETag"]), written_at=written_at)

    def _observe_response(self, response: Any) -> None:
        """Note S3's clock from a response's Date header (one-second resolution)."""
        headers = (response or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
        self._observe(http_date(headers.get("date")), resolution=1.0)

    def _remove(self, name: str, key: str, if_version: Any) -> bool:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if if_version is not UNCONDITIONAL:
            request["IfMatch"] = if_version
        with self._translate("delete", key):
            try:
                self._client.delete_object(**request)
            except self._errors.ClientError as exc:
                if _code(exc) in _PRECONDITION_FAILED | _NOT_FOUND:
                    return False
                raise
        return True

    def _list(self, full_prefix: str) -> Iterator[Listed]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with self._translate("list", full_prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    yield Listed(name=item["Key"], metadata=None)

    def _metadata(self, name: str) -> Mapping[str, str] | None:
        with self._translate("read", name[len(self.prefix) :]):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=name)
                metadata: Mapping[str, str] = head.get("Metadata", {})
                return metadata
            except self._errors.ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return None
                raise

    def _remove_many(self, names: list[str]) -> None:
        with self._translate("delete", names[0][len(self.prefix) :] if names else ""):
            response = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": name} for name in names], "Quiet": True}
            )
        failed = response.get("Errors", [])
        if failed:
            first = failed[0]
            raise StorageError(
                f"S3 could not delete {len(failed)} object(s) in bucket {self.bucket!r}, "
                f"first {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )

    @contextlib.contextmanager
    def _translate(self, action: str, key: str | None = None) -> Iterator[None]:
        """The one place S3's errors become dotflow's: an SDK error (after botocore's own retries) is a
        `StorageError` naming the bucket, and the key (`key=None`: the bucket itself). An expected
        answer (404 on a read, 412 on a conditional write) is handled inside the block, never here."""
        try:
            yield
        except (self._errors.ClientError, self._errors.BotoCoreError) as exc:
            raise self._storage_error(exc, action, key) from exc

    def _storage_error(self, exc: Exception, action: str, key: str | None) -> StorageError:
        bucket = f"S3 bucket {self.bucket!r} at {self.endpoint_url}"
        if isinstance(exc, self._errors.ClientError):
            code = _code(exc)
            message = f"{code} {exc.response.get('Error', {}).get('Message', '')}".rstrip()
            if key is not None:
                return StorageError(f"S3 {action} of key {key!r} in bucket {self.bucket!r} failed: {message}")
            if code in _NOT_FOUND or code == "NoSuchBucket":
                return StorageError(f"{bucket} does not exist")
            if code in _DENIED:
                return StorageError(f"access to {bucket} is denied: check the AWS credentials ({code})")
            return StorageError(f"{bucket} cannot be used: {message}")
        if isinstance(exc, self._errors.NoCredentialsError):
            return StorageError(
                f"no AWS credentials for {bucket}: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile"
            )
        if key is None and isinstance(exc, (self._errors.ConnectTimeoutError, self._errors.ReadTimeoutError)):
            return StorageError(f"{bucket} did not answer within the start-up deadline ({self.startup_deadline:g} s): {exc}")
        if key is None:  # connection refused, DNS (after retries)
            return StorageError(f"{bucket} cannot be reached: {exc}")
        return StorageError(f"S3 {action} of key {key!r} in bucket {self.bucket!r} at {self.endpoint_url} failed: {exc}")


def _startup_config(botocore: Any, deadline: float) -> Any:
    """The bucket check's client configuration: `_STARTUP_TRIES` tries whose connect and read timeouts
    add up to at most `deadline` seconds."""
    wait = deadline / (2 * _STARTUP_TRIES)
    retries = {"mode": "standard", "total_max_attempts": _STARTUP_TRIES}
    return botocore.config.Config(connect_timeout=wait, read_timeout=wait, retries=retries)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _import_sdk() -> Any:
    try:
        import boto3  # noqa: F401
        import botocore.config
        import botocore.exceptions
    except ModuleNotFoundError:
        raise ModuleNotFound(module="boto3", library="'dotflow-uow[s3]'") from None
    return botocore
