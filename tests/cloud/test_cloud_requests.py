"""HTTP requests the SDKs send per task, in every execution mode, on S3 and GCS.

Counted where the SDK sends them (a botocore `before-send` hook; a `requests.Session` subclass given
to the GCS client), logged to a file so requests from any process would be counted.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from dotflow import Config, Context, DotFlow
from dotflow.core.types import TypeStatus
from tests.servers import gcs_client, s3_client
from tests.support import boom, ok

pytestmark = pytest.mark.slow

MODES = ["sequential", "background", "sequential_group", "parallel"]


class RequestLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def record(self, kind: str, target: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"{os.getpid()} {kind} {target}\n".encode())
        finally:
            os.close(fd)

    def entries(self) -> list[tuple[str, str]]:
        return [tuple(line.split(" ", 2)[1:]) for line in self.path.read_text().splitlines()]

    def kinds(self) -> Counter:
        return Counter(kind for kind, _ in self.entries())

    def clear(self) -> None:
        self.path.write_text("")


class CountingSession(requests.Session):
    """The HTTP session of the GCS client: logs "upload" / "download" / "METHOD" per request."""

    def __init__(self, log: RequestLog) -> None:
        super().__init__()
        self.log = log

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        path = urlsplit(url).path
        name = path.rsplit("/o/", 1)[-1] if "/o/" in path else path
        if method == "POST" and path.startswith("/upload/"):
            self.log.record("upload", kwargs.get("params", {}).get("name", "") or "?")
        elif method == "GET" and ("alt=media" in url or path.startswith("/download/")):
            self.log.record("download", name)
        elif method == "GET" and "/o" not in path.split("/b/", 1)[-1]:
            # google-cloud-storage >= 3.17 checks in a background thread, after a 404, that a bucket
            # it has cached still exists (its OpenTelemetry metadata cache): no object is touched.
            self.log.record("bucket-check", name)
        else:
            self.log.record(method, name)
        return super().request(method, url, *args, **kwargs)


def counted_storage(cloud, log: RequestLog):
    if cloud.name == "s3":
        client = s3_client(cloud.server.url)
        kinds = {"PutObject": "upload", "GetObject": "download"}

        def before_send(request, event_name, **_):
            operation = event_name.rsplit(".", 1)[-1]
            log.record(kinds.get(operation, operation), urlsplit(request.url).path.rsplit("/", 1)[-1])

        storage = cloud.storage(client=client)
        client.meta.events.register("before-send.s3", before_send)  # after construction's HeadBucket
        return storage
    storage = cloud.storage(client=gcs_client(cloud.server.url, _http=CountingSession(log)))
    log.clear()  # drop construction's bucket check
    return storage


def build(storage, steps, mode, workflow_id):
    flow = DotFlow(config=Config(storage=storage), workflow_id=workflow_id)
    for index, step in enumerate(steps):
        flow.task.add(step=step, group_name=f"g{index % 2}" if mode == "sequential_group" else "default")
    return flow


def run(flow, mode, **kwargs):
    manager = flow.start(mode=mode, keep_going=True, **kwargs)
    if mode == "background":
        manager.thread.join(timeout=60)
        assert not manager.thread.is_alive()


@pytest.fixture
def log(tmp_path):
    return RequestLog(tmp_path / "requests.log")


@pytest.mark.parametrize("mode", MODES)
def test_each_successful_task_is_one_upload_and_no_download(cloud, log, mode):
    storage = counted_storage(cloud, log)
    flow = build(storage, [ok, ok, boom, ok], mode, f"io-{uuid.uuid4().hex[:8]}")
    run(flow, mode)
    tasks = flow.result_task()
    assert [t.status for t in tasks] == [TypeStatus.COMPLETED] * 2 + [TypeStatus.FAILED, TypeStatus.COMPLETED]
    assert log.kinds() == Counter({"upload": 3}), log.entries()
    assert {os.getpid()} == {int(line.split()[0]) for line in log.path.read_text().splitlines()}
    assert sorted(storage.list_keys(flow.workflow_id)) == sorted(
        storage.key(task=t) for t in tasks if t.status == TypeStatus.COMPLETED
    )


@pytest.mark.parametrize("mode", MODES)
def test_resume_downloads_once_per_lookup_and_uploads_only_what_runs(cloud, log, mode):
    storage = counted_storage(cloud, log)
    workflow_id = f"io-{uuid.uuid4().hex[:8]}"
    run(build(storage, [ok, ok, boom, ok], mode, workflow_id), mode)
    log.clear()

    again = build(storage, [ok, ok, ok, ok], mode, workflow_id)
    run(again, mode, resume=True)
    tasks = again.result_task()
    assert [t.status for t in tasks] == [TypeStatus.COMPLETED] * 4
    ran = [t for t in tasks if not t.restored]
    downloads = [target for kind, target in log.entries() if kind == "download"]
    assert len(downloads) == len(set(downloads)) <= 4, "each task is looked up at most once"
    kinds = log.kinds()
    kinds.pop("bucket-check", None)  # see CountingSession
    assert kinds == Counter({"upload": len(ran), "download": len(downloads)}), log.entries()
    if mode != "sequential_group":  # groups restore per group; the failed task's group re-runs after it
        assert [t.restored for t in tasks] == [True, True, False, mode == "parallel"]


def test_listings_are_paginated(cloud, log):
    storage = counted_storage(cloud, log)
    storage = type(storage)(bucket=cloud.bucket, client=storage._client, page_size=3)
    for n in range(10):
        storage.post(f"wf-page-{n}", Context(storage=n))
    log.clear()
    assert storage.list_keys("wf-page-") == [f"wf-page-{n}" for n in range(10)]
    listings = [kind for kind, _ in log.entries() if kind in ("ListObjectsV2", "GET")]
    assert len(listings) == 4, log.entries()  # 3 + 3 + 3 + 1
    log.clear()
    assert storage.delete_prefix("wf-page-") == 10
    assert storage.list_keys("wf-page-") == []


class UrlLog(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.urls.append((method, url))
        return super().request(method, url, *args, **kwargs)


@pytest.mark.parametrize("size, upload_type", [(1000, "multipart"), (9 * 1024 * 1024, "resumable")])
def test_gcs_conditional_uploads_carry_the_precondition(cloud_gcs, size, upload_type):
    """Up to 8 MiB one multipart request carries data and precondition together; above, the SDK opens a
    resumable session with the precondition (fake-gcs-server ignores it there, so only the request is
    checked)."""
    session = UrlLog()
    storage = cloud_gcs.storage(client=gcs_client(cloud_gcs.server.url, _http=session))
    session.urls.clear()
    assert storage.post_if("wf-1-a", Context(storage="x" * size), version=None) is True
    uploads = [url for method, url in session.urls if "/upload/" in url]
    assert f"uploadType={upload_type}" in uploads[0] and "ifGenerationMatch=0" in uploads[0]
    if upload_type == "multipart":
        assert len(uploads) == 1
