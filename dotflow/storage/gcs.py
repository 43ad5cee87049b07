"""`StorageGCS`: checkpoints as objects in a Google Cloud Storage bucket, via google-cloud-storage.

    from dotflow.providers import StorageGCS
    storage = StorageGCS(bucket="my-bucket", prefix="dotflow/", project="my-project")

Needs the `gcs` extra (`pip install 'dotflow-uow[gcs]'`; `gcp` is an alias). Without `client=`, the
client is built by the SDK from `project` and its usual environment (Application Default
Credentials; `STORAGE_EMULATOR_HOST` points it at an emulator, anonymously). Construction checks the
bucket with one metadata GET.

Retries: every request goes through `retry`, a `google.api_core.retry.Retry` (default: the SDK's
`DEFAULT_RETRY`, which retries 408/429/5xx and connection errors with exponential backoff, here with a
60 s deadline; the bucket check at construction, with a 5 s one, so an endpoint that is down fails
the start of a workflow in seconds). Conditional writes are retried too: if a retried write finds its own earlier attempt
already stored (same revision in the body), `post_if` reports it as written. 403, 404 and 412 are
answered at once.

Requests per operation: `post` one upload; `post_if` one upload with `ifGenerationMatch` (0 = must
not exist; a 412 costs one GET to tell a lost race from an expired object or a retried write of
our own); `get` / `read_checkpoint` one media GET (it returns the generation too). Documents up to
8 MiB (checkpoints, in practice) go up in one multipart request, so the precondition and the data
travel together; larger ones go through the SDK's resumable upload, whose session is opened with
the same precondition (fake-gcs-server ignores it there, so the tests cannot show GCS enforcing
it). `delete_if` reads the object's generation, then deletes with `ifGenerationMatch`: GCS
enforces that atomically; the read first keeps the answer right on emulators that ignore
preconditions on DELETE (fake-gcs-server does). Listings are paginated
(`page_size` per request) and carry the metadata, so TTLs cost no extra request there. See
`object_store` for keys, versions (the generation) and TTL.

Leases (claims, `object_leases`): create one upload with ``ifGenerationMatch=0``, read one metadata
GET (the generation and `updated`), renew one upload with ``ifGenerationMatch``, release one DELETE
with it (after the generation check described above). GCS's clock is learned from the `updated`
time of this worker's own lease writes and from the Date of a refused create.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dotflow.core.exception import ModuleNotFound, StorageError
from dotflow.storage.object_leases import LeaseObject, http_date
from dotflow.storage.object_store import UNCONDITIONAL, Downloaded, Listed, ObjectStorage

__all__ = ["StorageGCS"]

_DEADLINE_SECONDS = 60.0
# The bucket check at construction gives up sooner: an endpoint that is down is an error in seconds.
STARTUP_DEADLINE_SECONDS = 5.0


class StorageGCS(ObjectStorage):
    """Checkpoints in Google Cloud Storage; see the module docstring."""

    service = "GCS"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "dotflow/",
        project: str | None = None,
        client: Any = None,
        retry: Any = None,
        clock: Callable[[], float] | None = None,
        page_size: int = 1000,
        startup_deadline: float = STARTUP_DEADLINE_SECONDS,
    ) -> None:
        """`startup_deadline`: seconds the bucket check at construction may take in all (its tries and
        the last request's timeout); an unreachable endpoint fails the start of a workflow that soon."""
        if not startup_deadline > 0:
            raise ValueError(f"startup_deadline must be a number of seconds > 0, not {startup_deadline!r}")
        self.startup_deadline = float(startup_deadline)
        super().__init__(bucket=bucket, prefix=prefix, clock=clock, page_size=page_size)
        sdk = _import_sdk()
        self._exceptions = sdk.exceptions
        self._auth_exceptions = sdk.auth_exceptions
        self.endpoint_url: str | None = None  # known once there is a client
        self._retry = retry if retry is not None else sdk.DEFAULT_RETRY.with_timeout(_DEADLINE_SECONDS)
        startup = sdk.DEFAULT_RETRY.with_delay(initial=0.1, maximum=1.0).with_timeout(self.startup_deadline)
        self._startup_retry = retry if retry is not None else startup
        if client is None:
            try:
                client = sdk.storage.Client(project=project)
            except sdk.auth_exceptions.DefaultCredentialsError as exc:
                raise self._no_credentials() from exc
        self._client = client
        self.project: str | None = project if project is not None else client.project
        self.endpoint_url = getattr(client, "api_endpoint", None) or client._connection.API_BASE_URL
        self._bucket = client.bucket(bucket)
        self._check_bucket()

    def _check_bucket(self) -> None:
        with self._translate("check"):
            self._bucket.reload(retry=self._startup_retry, timeout=self.startup_deadline)

    # ----------------------------------------------------------------------------------- primitives

    def _download(self, name: str, key: str) -> Downloaded | None:
        blob = self._bucket.blob(name)
        with self._translate("read", key):
            try:
                body = blob.download_as_bytes(retry=self._retry)
            except self._exceptions.NotFound:
                return None
        return Downloaded(body=body, version=str(blob.generation))

    def _upload(self, name: str, key: str, data: bytes, metadata: dict[str, str], if_version: Any) -> bool:
        blob = self._bucket.blob(name)
        blob.metadata = metadata or None
        condition: dict[str, int] = {}
        if if_version is None:
            condition["if_generation_match"] = 0
        elif if_version is not UNCONDITIONAL:
            generation = _generation(if_version)
            if generation is None:
                return False  # not a generation this bucket could have handed out
            condition["if_generation_match"] = generation
        with self._translate("write", key):
            try:
                blob.upload_from_string(data, content_type="application/json", retry=self._retry, **condition)
            except self._exceptions.PreconditionFailed:
                return False
        return True

    def _lease_put(self, name: str, key: str, body: bytes, metadata: dict[str, str], if_version: str | None) -> str | None:
        blob = self._bucket.blob(name)
        blob.metadata = metadata
        if if_version is None:
            generation = 0
        else:
            found = _generation(if_version)
            if found is None:
                return None
            generation = found
        with self._translate("write the lease of", key):
            try:
                blob.upload_from_string(body, content_type="text/plain", retry=self._retry,
                                        if_generation_match=generation)  # fmt: skip
            except self._exceptions.PreconditionFailed as exc:
                response = getattr(exc, "response", None)
                self._observe(http_date(None if response is None else response.headers.get("Date")), resolution=1.0)
                return None
        if blob.updated is not None:
            self._observe(blob.updated.timestamp())
        return str(blob.generation)

    def _lease_head(self, name: str, key: str) -> LeaseObject | None:
        with self._translate("read the lease of", key):
            blob = self._bucket.get_blob(name, retry=self._retry)
        if blob is None:
            return None
        written_at = None if blob.updated is None else blob.updated.timestamp()
        return LeaseObject(metadata=blob.metadata or {}, version=str(blob.generation), written_at=written_at)

    def _remove(self, name: str, key: str, if_version: Any) -> bool:
        condition: dict[str, int] = {}
        if if_version is not UNCONDITIONAL:
            generation = _generation(if_version)
            with self._translate("read", key):
                current = self._bucket.get_blob(name, retry=self._retry)
            if generation is None or current is None or current.generation != generation:
                return False
            condition["if_generation_match"] = generation
        with self._translate("delete", key):
            try:
                self._bucket.blob(name).delete(retry=self._retry, **condition)
            except (self._exceptions.NotFound, self._exceptions.PreconditionFailed):
                return False
        return True

    def _list(self, full_prefix: str) -> Iterator[Listed]:
        blobs = self._client.list_blobs(
            self._bucket, prefix=full_prefix, page_size=self.page_size, retry=self._retry
        )
        with self._translate("list", full_prefix[len(self.prefix) :]):
            for blob in blobs:
                yield Listed(name=blob.name, metadata=blob.metadata or {})

    def _metadata(self, name: str) -> Mapping[str, str] | None:
        with self._translate("read", name[len(self.prefix) :]):
            blob = self._bucket.get_blob(name, retry=self._retry)
        return None if blob is None else (blob.metadata or {})

    def _remove_many(self, names: list[str]) -> None:
        for name in names:
            with self._translate("delete", name[len(self.prefix) :]):
                try:
                    self._bucket.blob(name).delete(retry=self._retry)
                except self._exceptions.NotFound:
                    pass

    @contextlib.contextmanager
    def _translate(self, action: str, key: str | None = None) -> Iterator[None]:
        """The one place GCS's errors become dotflow's: an SDK error (after the retry policy gave up) is
        a `StorageError` naming the bucket, and the key (`key=None`: the bucket itself, where any error
        is one). An expected answer (404 on a read, 412 on a conditional write) is handled inside the
        block, never here."""
        try:
            yield
        except Exception as exc:
            error = self._storage_error(exc, action, key)
            if error is None:
                raise
            raise error from exc

    def _storage_error(self, exc: Exception, action: str, key: str | None) -> StorageError | None:
        """The `StorageError` for an SDK error `exc` (None if it is not one)."""
        errors = self._exceptions
        bucket = f"GCS bucket {self.bucket!r} at {self.endpoint_url}"
        if isinstance(exc, self._auth_exceptions.DefaultCredentialsError):
            return self._no_credentials()
        if isinstance(exc, errors.GoogleAPICallError):
            if key is not None:
                return StorageError(
                    f"GCS {action} of key {key!r} in bucket {self.bucket!r} failed: {exc.code} {exc.message}"
                )
            if isinstance(exc, errors.NotFound):
                return StorageError(f"{bucket} does not exist")
            if isinstance(exc, (errors.Forbidden, errors.Unauthorized)):
                return StorageError(f"access to {bucket} is denied: check the credentials ({exc.code})")
            return StorageError(f"{bucket} cannot be used: {exc}")
        if key is None:  # connection errors, after the retry deadline
            return StorageError(f"{bucket} cannot be reached: {type(exc).__name__}: {exc}")
        if isinstance(exc, (errors.RetryError, ConnectionError, OSError)):
            return StorageError(
                f"GCS {action} of key {key!r} in bucket {self.bucket!r} at {self.endpoint_url} failed: "
                f"{type(exc).__name__}: {exc}"
            )
        return None

    def _no_credentials(self) -> StorageError:
        return StorageError(
            f"no Google Cloud credentials for GCS bucket {self.bucket!r}: set up Application Default "
            "Credentials (GOOGLE_APPLICATION_CREDENTIALS) or pass client="
        )


def _generation(version: str) -> int | None:
    try:
        generation = int(version)
    except (TypeError, ValueError):
        return None
    return generation if generation > 0 else None


class _Sdk:
    def __init__(self) -> None:
        import google.api_core.exceptions as exceptions
        import google.auth.exceptions as auth_exceptions
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.exceptions = exceptions
        self.auth_exceptions = auth_exceptions
        self.storage = storage
        self.DEFAULT_RETRY = DEFAULT_RETRY


def _import_sdk() -> _Sdk:
    try:
        return _Sdk()
    except ModuleNotFoundError:
        raise ModuleNotFound(module="google-cloud-storage", library="'dotflow-uow[gcs]'") from None
