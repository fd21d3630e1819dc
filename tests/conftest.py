"""Shared fixtures: the three stores every dataset test runs on, and tiny tables of each kind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import pytest

# Beam workers and moto log at INFO; keep test output readable.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session", autouse=True)
def _temp_files_inside_the_test_run(tmp_path_factory):
    """Temp files of the runs the tests start -- Beam's staging directories, worker logs,
    progress files, in this process and in the workers it starts -- go to the test run's own
    temp directory, which pytest removes when the run passes (``tmp_path_retention_policy``),
    instead of piling up in /tmp (~75 entries a run)."""
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    yield
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 server, in its own process on 127.0.0.1, for the whole test session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Store:
    """Where a test's datasets live: a URL prefix plus the fsspec options to reach it."""

    name: str
    prefix: str
    storage_options: dict = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @property
    def multiprocess(self) -> bool:
        """memory:// lives in one process: concurrency tests use threads there."""
        return self.name != "memory"


def s3_options(endpoint: str) -> dict:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def make_bucket(endpoint: str) -> str:
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> Store:
    """Each dataset test runs on a local path, on memory://, and on moto's S3 server."""
    if request.param == "local":
        return Store("local", str(tmp_path))
    if request.param == "memory":
        return Store("memory", f"memory://t-{uuid.uuid4().hex[:12]}")
    endpoint = request.getfixturevalue("moto_endpoint")
    return Store("s3", f"s3://{make_bucket(endpoint)}", s3_options(endpoint))
