"""The cloud backends load lazily and say which extra to install when their SDK is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dotflow.core.exception import ModuleNotFound


@pytest.mark.parametrize(
    "name, sdk_modules, extra",
    [
        ("StorageS3", ["boto3", "botocore", "botocore.config", "botocore.exceptions"], "dotflow-uow[s3]"),
        ("StorageGCS", ["google.cloud.storage", "google.cloud"], "dotflow-uow[gcs]"),
    ],
)
def test_a_missing_sdk_names_the_extra(monkeypatch, name, sdk_modules, extra):
    import dotflow.providers

    storage_class = getattr(dotflow.providers, name)  # importing the class needs no SDK
    for module in sdk_modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ModuleNotFound, match=extra.replace("[", r"\[").replace("]", r"\]")):
        storage_class(bucket="any-bucket")


@pytest.mark.slow
def test_import_dotflow_loads_no_cloud_sdk():
    code = (
        "import sys, dotflow, dotflow.providers\n"
        "loaded = [m for m in ('boto3', 'botocore', 'google.cloud.storage') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["StorageS3", "StorageGCS"])
def test_unknown_or_positional_arguments_are_refused(name):
    import dotflow.providers

    storage_class = getattr(dotflow.providers, name)
    with pytest.raises(TypeError, match="endpoint"):
        storage_class(bucket="any-bucket", endpoint="http://127.0.0.1:1")  # a typo must not reach real AWS
    with pytest.raises(TypeError):
        storage_class("any-bucket")
