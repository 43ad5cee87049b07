"""A storage whose endpoint accepts connections and never answers (a hung server or proxy) fails the
start of a workflow within its start-up deadline, with one error naming the endpoint: StorageS3 (its
bucket check's own short timeouts), StorageGCS (its start-up retry deadline), StorageSQL and the
journal on PostgreSQL (`connect_timeout`).
The listener is a thread of the test (`tests/silent_listener.py`); the bounds are the configured
deadline plus a generous margin for a loaded machine, never a measure of its speed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from dotflow.core.exception import StorageError
from tests.silent_listener import SilentListener
from uow import JournalError

pytestmark = pytest.mark.slow  # a listener the test starts
MARGIN = 10.0  # seconds a loaded machine may add; the SDKs' own defaults would take 60 s to 301 s


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    with SilentListener() as listener:
        yield listener


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def eventually(condition: Callable[[], bool], patience: float = 5.0) -> bool:
    """Whether `condition` holds within `patience` seconds (the listener thread may lag behind the client)."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def one_line_naming(message: str, listener: SilentListener) -> bool:
    return f"127.0.0.1:{listener.port}" in message and "\n" not in message


def test_storages3_on_a_silent_endpoint_fails_within_its_startup_deadline(
    silent: SilentListener, aws_credentials: None
) -> None:
    from dotflow.storage.s3 import StorageS3

    deadline = 1.0
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        StorageS3(bucket="orders", endpoint_url=silent.url, region="us-east-1", startup_deadline=deadline)
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert one_line_naming(message, silent), message
    assert "'orders'" in message and "did not answer within the start-up deadline (1 s)" in message
    assert eventually(lambda: silent.accepted == 2)  # two tries, each given up on (the listener thread counts)
    assert elapsed < deadline + 1 + MARGIN, f"{elapsed:.1f} s"  # + botocore's pause between the tries


def test_storages3_reads_and_writes_keep_the_standard_retry_policy(moto_server: object, aws_credentials: None) -> None:
    from dotflow.storage.s3 import StorageS3
    from tests.servers import new_bucket_name, s3_client

    url = moto_server.url  # type: ignore[attr-defined]
    bucket = new_bucket_name("s3")
    s3_client(url).create_bucket(Bucket=bucket)
    storage = StorageS3(bucket=bucket, endpoint_url=url, region="us-east-1", startup_deadline=0.5)
    config = storage._client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout) == (60, 60)  # botocore's defaults, not the check's
    storage.post("orders-0", "v1")
    assert storage.get("orders-0").storage == "v1"


def test_a_startup_deadline_that_is_not_positive_is_refused(aws_credentials: None) -> None:
    from dotflow.storage.gcs import StorageGCS
    from dotflow.storage.s3 import StorageS3

    with pytest.raises(ValueError, match="startup_deadline must be a number of seconds > 0, not 0"):
        StorageS3(bucket="orders", endpoint_url="http://127.0.0.1:9", startup_deadline=0)
    with pytest.raises(ValueError, match="startup_deadline must be a number of seconds > 0, not -1"):
        StorageGCS(bucket="orders", client=object(), startup_deadline=-1)


def test_storagegcs_on_a_silent_endpoint_fails_within_its_startup_deadline(silent: SilentListener) -> None:
    from dotflow.storage import gcs
    from tests.servers import gcs_client

    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        gcs.StorageGCS(bucket="orders", client=gcs_client(silent.url), startup_deadline=1.0)
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert one_line_naming(message, silent), message
    assert message.startswith(f"GCS bucket 'orders' at {silent.url} cannot be reached: RetryError: Timeout of 1.0s exceeded")
    assert elapsed < 2 * 1.0 + MARGIN, f"{elapsed:.1f} s"  # the retry deadline, then the last request's timeout


@pytest.mark.parametrize("opener", ["StorageSQL", "Journal"])
def test_postgresql_on_a_silent_endpoint_fails_within_connect_timeout(silent: SilentListener, opener: str) -> None:
    from dotflow.providers import StorageSQL
    from uow import Journal

    url = f"postgresql://dotflow@127.0.0.1:{silent.port}/orders?connect_timeout=2"
    expected = StorageError if opener == "StorageSQL" else JournalError
    started = time.monotonic()
    with pytest.raises(expected) as raised:
        (StorageSQL if opener == "StorageSQL" else Journal)(url)
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert one_line_naming(message, silent), message
    assert f"cannot reach the server at 127.0.0.1:{silent.port}: connection timeout expired" in message
    assert silent.accepted >= 1
    assert elapsed < 2 + MARGIN, f"{elapsed:.1f} s"
