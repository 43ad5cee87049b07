"""Transient errors are retried by the SDKs' own machinery; permanent ones fail at once.

Faults are injected at the HTTP layer the SDK sends through (a botocore `before-send` hook that
answers in the server's place; a `requests.Session` subclass for GCS); every other request reaches
the real local server. Retry delays are injected as zero: no test waits for a backoff.
"""

from __future__ import annotations

import pytest
import requests
from botocore.awsrequest import AWSResponse

from dotflow.core.context import Context
from dotflow.core.exception import StorageError
from tests.servers import gcs_client, s3_client

pytestmark = pytest.mark.slow


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


class S3Faults:
    """Answers the next `count` PutObject requests with `status` instead of sending them."""

    def __init__(self, client, status: int, code: str, count: int) -> None:
        self.status, self.code, self.left, self.sent = status, code, count, 0
        client.meta.events.register("before-send.s3.PutObject", self)

    def __call__(self, request, **_):
        self.sent += 1
        if self.left > 0:
            self.left -= 1
            body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, self.status, {}, _Body(body))
        return None


class GcsFaults(requests.Session):
    """Answers the next `left` uploads with `status` instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.status, self.left, self.sent = 503, 0, 0

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if method == "POST" and "/upload/" in url:
            self.sent += 1
            if self.left > 0:
                self.left -= 1
                response = requests.Response()
                response.status_code, response.url, response._content = self.status, url, b'{"error": {}}'
                response.request = requests.Request(method, url).prepare()
                return response
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def no_backoff(monkeypatch):
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)


def s3_storage(cloud, **retries):
    client = s3_client(cloud.server.url, **retries)
    return cloud.storage(client=client), client


def gcs_storage(cloud):
    from google.cloud.storage.retry import DEFAULT_RETRY

    session = GcsFaults()
    retry = DEFAULT_RETRY.with_delay(initial=0.0, maximum=0.0).with_timeout(10)
    return cloud.storage(client=gcs_client(cloud.server.url, _http=session), retry=retry), session


def test_s3_transient_errors_are_retried_by_botocore(cloud_s3, no_backoff):
    storage, client = s3_storage(cloud_s3, total_max_attempts=4)
    faults = S3Faults(client, 503, "ServiceUnavailable", count=2)
    storage.post("wf-1-a", Context(storage="after two 503s"))
    assert faults.sent == 3
    assert storage.get("wf-1-a").storage == "after two 503s"


def test_s3_gives_up_after_its_attempts_and_the_previous_object_stays(cloud_s3, no_backoff):
    storage, client = s3_storage(cloud_s3, total_max_attempts=3)
    storage.post("wf-1-a", Context(storage="previous"))
    faults = S3Faults(client, 500, "InternalError", count=10)
    with pytest.raises(StorageError) as info:
        storage.post("wf-1-a", Context(storage="lost"))
    assert faults.sent == 3
    assert "'wf-1-a'" in str(info.value) and cloud_s3.bucket in str(info.value)
    assert storage.get("wf-1-a").storage == "previous"


def test_s3_permanent_errors_fail_at_once(cloud_s3, no_backoff):
    storage, client = s3_storage(cloud_s3, total_max_attempts=5)
    faults = S3Faults(client, 403, "AccessDenied", count=10)
    with pytest.raises(StorageError, match="AccessDenied") as info:
        storage.post("wf-1-a", Context(storage=1))
    assert faults.sent == 1
    assert "'wf-1-a'" in str(info.value) and cloud_s3.bucket in str(info.value)


def test_gcs_transient_errors_are_retried_by_the_sdk(cloud_gcs):
    storage, session = gcs_storage(cloud_gcs)
    session.left = 2
    assert storage.post_if("wf-1-a", Context(storage="after two 503s"), version=None) is True
    assert session.sent == 3
    assert storage.get("wf-1-a").storage == "after two 503s"


def test_gcs_permanent_errors_fail_at_once_and_the_previous_object_stays(cloud_gcs):
    storage, session = gcs_storage(cloud_gcs)
    storage.post("wf-1-a", Context(storage="previous"))
    session.status, session.left, session.sent = 403, 10, 0
    with pytest.raises(StorageError) as info:
        storage.post("wf-1-a", Context(storage="lost"))
    assert session.sent == 1
    assert "'wf-1-a'" in str(info.value) and cloud_gcs.bucket in str(info.value) and "403" in str(info.value)
    assert storage.get("wf-1-a").storage == "previous"
