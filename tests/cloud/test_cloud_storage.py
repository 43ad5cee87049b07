"""StorageS3 and StorageGCS beyond the shared contract, on the local servers, over HTTP."""

from __future__ import annotations

import json
import threading

import pytest

from dotflow.core.context import Context
from dotflow.core.exception import StorageError
from tests.servers import free_port, gcs_client, new_bucket_name, s3_client

pytestmark = pytest.mark.slow


def test_object_name_is_prefix_plus_key_and_holds_one_document(cloud):
    storage = cloud.storage(prefix="team/a/")
    storage.post("wf-1-extract", Context(storage={"rows": 3}), fingerprint="fp")
    assert cloud.names() == ["team/a/wf-1-extract"]
    body = json.loads(cloud.get_raw("team/a/wf-1-extract"))
    assert body["format"] == "dotflow-checkpoint"
    assert body["value"]["$context"]["storage"] == {"rows": 3}
    assert body["fingerprint"] == "fp"


@pytest.mark.parametrize(
    "key", ["", "../escape", "a/../../b", "./a", "a/./b", "/abs", "a\0b", "wf-1.fingerprint", "x" * 1100]
)
def test_keys_that_could_escape_the_prefix_are_refused(cloud, key):
    storage = cloud.storage(prefix="p/")
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.post(key, Context(storage=1))
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.read_checkpoint(key)
    assert cloud.names() == []


def test_a_key_with_slashes_stays_under_the_prefix(cloud):
    storage = cloud.storage(prefix="p/")
    storage.post("wf/1/a", Context(storage=1))
    assert cloud.names() == ["p/wf/1/a"]
    assert storage.list_keys("wf/") == ["wf/1/a"]


def test_delete_prefix_refuses_an_empty_prefix(cloud):
    storage = cloud.storage()
    storage.post("wf-1-a", Context(storage=1))
    with pytest.raises(ValueError, match="empty prefix") as info:
        storage.delete_prefix("")
    assert cloud.bucket in str(info.value)
    assert storage.get("wf-1-a").storage == 1


def test_other_prefixes_in_the_bucket_are_untouched(cloud):
    ours, theirs = cloud.storage(prefix="ours/"), cloud.storage(prefix="theirs/")
    ours.post("wf-1-a", Context(storage="ours"))
    theirs.post("wf-1-a", Context(storage="theirs"))
    assert ours.delete_prefix("wf-") == 1
    assert theirs.get("wf-1-a").storage == "theirs"
    assert ours.list_keys() == [] and theirs.list_keys() == ["wf-1-a"]


def test_objects_written_by_dotflow_101_still_read(cloud):
    storage = cloud.storage()
    cloud.put_raw("dotflow/wf-1-a", json.dumps([json.dumps({"rows": 3})]).encode())
    cloud.put_raw("dotflow/wf-1-a.fingerprint", json.dumps(["fp-101"]).encode())
    cloud.put_raw("dotflow/wf-1-b", json.dumps([json.dumps(1), json.dumps("two")]).encode())
    cloud.put_raw("dotflow/wf-1-failed", json.dumps([json.dumps(None)]).encode())

    checkpoint = storage.read_checkpoint("wf-1-a")
    assert checkpoint.context.storage == {"rows": 3}
    assert checkpoint.fingerprint == "fp-101"
    assert checkpoint.version
    both = storage.get("wf-1-b").storage
    assert [item.storage for item in both] == [1, "two"]
    assert storage.read_checkpoint("wf-1-failed") is None  # 1.0.1 wrote null for a failed task
    assert storage.list_keys("wf-1-") == ["wf-1-a", "wf-1-b", "wf-1-failed"]  # side objects are not keys

    storage.post("wf-1-a", Context(storage={"rows": 4}))  # the new document carries its own fingerprint
    assert storage.read_checkpoint("wf-1-a").fingerprint is None
    assert storage.delete("wf-1-a") is True
    assert "dotflow/wf-1-a.fingerprint" not in cloud.names()
    assert storage.delete_prefix("wf-1-") == 2
    assert cloud.names() == []


def test_an_unencodable_value_is_refused_and_the_previous_object_stays(cloud):
    storage = cloud.storage()
    storage.post("wf-1-a", Context(storage="good"))
    before = cloud.get_raw("dotflow/wf-1-a")
    with pytest.raises(TypeError, match="wf-1-a"):
        storage.post("wf-1-a", Context(storage={"lock": threading.Lock()}))
    with pytest.raises(TypeError, match="wf-1-a"):
        storage.post_if("wf-1-a", Context(storage=object()), version=storage.read_checkpoint("wf-1-a").version)
    assert cloud.get_raw("dotflow/wf-1-a") == before


def test_a_missing_bucket_is_one_clear_error_at_construction(cloud):
    missing = new_bucket_name("missing")
    with pytest.raises(StorageError) as info:
        cloud.storage(bucket=missing)
    message = str(info.value)
    assert missing in message and "does not exist" in message and cloud.server.url in message
    assert info.value.__cause__ is not None  # raised from the SDK's error, by the backend's one mapping


def test_s3_without_credentials_is_one_clear_error_from_the_same_mapping(moto_server, monkeypatch, tmp_path):
    import boto3

    from dotflow.storage.s3 import StorageS3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.Session().client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    with pytest.raises(StorageError, match="no AWS credentials for S3 bucket 'some-bucket'") as info:
        StorageS3(bucket="some-bucket", client=client)
    assert type(info.value.__cause__).__name__ == "NoCredentialsError"


def test_a_bucket_deleted_later_fails_fast_naming_bucket_and_key(cloud):
    storage = cloud.storage()
    if cloud.name == "s3":
        cloud.client.delete_bucket(Bucket=cloud.bucket)
    else:
        cloud.client.bucket(cloud.bucket).delete()
    with pytest.raises(StorageError) as info:
        storage.post("wf-1-a", Context(storage=1))
    assert cloud.bucket in str(info.value) and "'wf-1-a'" in str(info.value)
    assert "404" in str(info.value) or "NoSuchBucket" in str(info.value)


def test_s3_unreachable_endpoint_is_one_clear_error(monkeypatch):
    from dotflow.storage.s3 import StorageS3

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StorageError) as info:
        StorageS3(bucket="some-bucket", client=s3_client(url, total_max_attempts=1))
    assert "'some-bucket'" in str(info.value) and url in str(info.value) and "cannot be reached" in str(info.value)


def test_gcs_unreachable_endpoint_is_one_clear_error():
    from google.api_core.retry import Retry

    from dotflow.storage.gcs import StorageGCS

    url = f"http://127.0.0.1:{free_port()}"
    no_wait = Retry(initial=0.001, maximum=0.001, timeout=0.05)
    with pytest.raises(StorageError) as info:
        StorageGCS(bucket="some-bucket", client=gcs_client(url), retry=no_wait)
    assert "'some-bucket'" in str(info.value) and url in str(info.value) and "cannot be reached" in str(info.value)


def test_s3_built_from_arguments_and_aws_environment(moto_server, monkeypatch):
    from dotflow.storage.s3 import StorageS3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = new_bucket_name("env")
    s3_client(moto_server.url).create_bucket(Bucket=bucket)
    storage = StorageS3(bucket=bucket, region="us-east-1", endpoint_url=moto_server.url)
    assert storage._client.meta.config.retries["mode"] == "standard"
    storage.post("wf-1-a", Context(storage="from args"))
    assert StorageS3(bucket=bucket, endpoint_url=moto_server.url).get("wf-1-a").storage == "from args"


def test_gcs_built_from_storage_emulator_host(fake_gcs_server, monkeypatch):
    from dotflow.storage.gcs import StorageGCS

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_server.url)
    bucket = new_bucket_name("env")
    gcs_client(fake_gcs_server.url).create_bucket(bucket)
    storage = StorageGCS(bucket=bucket, project="dotflow-tests")
    storage.post("wf-1-a", Context(storage="from env"))
    assert StorageGCS(bucket=bucket).get("wf-1-a").storage == "from env"


def test_lazy_import_from_providers():
    import dotflow.providers as providers
    from dotflow.storage.gcs import StorageGCS
    from dotflow.storage.s3 import StorageS3

    assert providers.StorageS3 is StorageS3 and providers.StorageGCS is StorageGCS


def test_s3_refused_credentials_are_one_clear_error():
    from dotflow.storage.s3 import StorageS3
    from tests.servers import start_moto

    server = start_moto(authenticate=True)  # knows no credentials: every request is refused
    try:
        with pytest.raises(StorageError) as info:
            StorageS3(bucket="some-bucket", client=s3_client(server.url))
    finally:
        server.stop()
    message = str(info.value)
    assert "'some-bucket'" in message and server.url in message and "check the AWS credentials" in message


def test_gcs_missing_credentials_are_one_clear_error(monkeypatch, tmp_path):
    from dotflow.storage.gcs import StorageGCS

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never ask a metadata server
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(StorageError) as info:
        StorageGCS(bucket="some-bucket", project="p")
    assert "'some-bucket'" in str(info.value) and "credentials" in str(info.value)


def test_an_integer_expiry_written_by_another_program_is_honoured(cloud):
    from dotflow.testing import ManualClock

    clock = ManualClock(start=1000.0)
    storage = cloud.storage(clock=clock)
    from dotflow.values.checkpoint_format import encode_document

    document = json.loads(encode_document("wf-1-a", Context(storage="v"), None, None))
    document["expires_at"] = 1010
    cloud.put_raw("dotflow/wf-1-a", json.dumps(document).encode())
    assert storage.get("wf-1-a").storage == "v"
    clock.advance(10)
    assert storage.read_checkpoint("wf-1-a") is None


@pytest.mark.parametrize(
    "body", [b"", b"{not json", b'{"some": "dict"}', b"[1, 2]", b'{"format": "dotflow-checkpoint", "version": 99}']
)
def test_an_unreadable_object_is_an_error_never_missing(cloud, body):
    from dotflow.core.exception import CorruptCheckpointError

    storage = cloud.storage()
    cloud.put_raw("dotflow/wf-1-a", body)
    with pytest.raises(CorruptCheckpointError) as info:
        storage.read_checkpoint("wf-1-a")
    assert "'wf-1-a'" in str(info.value) and cloud.bucket in str(info.value)
    with pytest.raises(CorruptCheckpointError):
        storage.get("wf-1-a")


def test_a_101_failure_marker_counts_as_absent_for_conditional_writes(cloud):
    storage = cloud.storage()
    cloud.put_raw("dotflow/wf-1-a", json.dumps([json.dumps(None)]).encode())  # 1.0.1 wrote null on failure
    assert storage.read_checkpoint("wf-1-a") is None
    assert storage.delete_if("wf-1-a", version=None) is True
    cloud.put_raw("dotflow/wf-1-a", json.dumps([json.dumps(None)]).encode())
    assert storage.post_if("wf-1-a", Context(storage="resumed"), version=None) is True
    assert storage.get("wf-1-a").storage == "resumed"
    assert storage.post_if("wf-1-a", Context(storage="again"), version=None) is False


def test_resume_over_a_101_failure_marker_runs_the_task(cloud):
    from dotflow import Config, DotFlow, action

    @action
    def work():
        return "done"

    storage = cloud.storage()
    cloud.put_raw("dotflow/legacy-0-work", json.dumps([json.dumps(None)]).encode())
    flow = DotFlow(config=Config(storage=storage), workflow_id="legacy")
    flow.task.add(step=work)
    flow.start(resume=True)
    task = flow.result_task()[0]
    assert (task.status, task.restored, task.current_context.storage) == ("Completed", False, "done")
    assert storage.get("legacy-0-work").storage == "done"


def test_post_many_uploads_a_batch_concurrently_and_refuses_an_unencodable_one_whole(cloud):
    storage = cloud.storage()
    with pytest.raises(TypeError, match="wf-2-c"):
        storage.post_many([("wf-1-b", Context(storage=1), None, None), ("wf-2-c", Context(storage=object()), None, None)])
    assert storage.read_checkpoint("wf-1-b") is None  # encoded before the first upload: nothing was sent
    meeting = threading.Barrier(4, timeout=10)  # four uploads must be in flight at once, or this breaks
    upload = storage._upload

    def upload_together(*args, **kwargs):
        meeting.wait()
        return upload(*args, **kwargs)

    storage._upload = upload_together
    storage.post_many([(f"wf-{i}-t", Context(storage={"i": i}), None, "fp") for i in range(8)])
    assert [storage.get(f"wf-{i}-t").storage for i in range(8)] == [{"i": i} for i in range(8)]


@pytest.mark.timeout(20)
def test_gcs_unreachable_at_start_fails_within_the_startup_deadline_not_the_sdk_one():
    from dotflow.storage import gcs as storage_gcs

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError) as info:  # 5 s by default; the SDK's own is 60 s
        storage_gcs.StorageGCS(bucket="some-bucket", client=gcs_client(url), startup_deadline=0.3)
    assert "'some-bucket'" in str(info.value) and url in str(info.value) and "cannot be reached" in str(info.value)


def test_the_public_attributes_of_1_0_1(cloud, tmp_path):
    """StorageS3(...).bucket / .prefix / .region, StorageGCS(...).bucket / .prefix / .project, StorageFile(...).path."""
    from dotflow.providers import StorageFile

    if cloud.name == "s3":
        storage = cloud.storage(prefix="team/", region="eu-west-1")
        assert (storage.bucket, storage.prefix, storage.region) == (cloud.bucket, "team/", "eu-west-1")
        assert cloud.storage().region == "us-east-1"  # the client's, when not given
    else:
        storage = cloud.storage(prefix="team/", project="my-proj")
        assert (storage.bucket, storage.prefix, storage.project) == (cloud.bucket, "team/", "my-proj")
        assert cloud.storage().project == cloud.client.project
    assert StorageFile(path=tmp_path).path == tmp_path / "tasks"  # as in 1.0.1
