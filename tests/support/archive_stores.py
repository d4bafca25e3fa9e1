"""Archives for tests: a directory of the test's own, or a bucket on a real S3-compatible HTTP
server (moto's server mode) on a loopback port."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

from service.local.embedded_redis import free_port


@dataclass
class S3Server:
    port: int
    server: ThreadedMotoServer

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()


@contextmanager
def s3_archive(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, S3Server]]:
    """An `s3://` archive URL on a fresh bucket of a moto server; obstore finds the endpoint
    and credentials in the standard variables, as it would in production."""
    port = free_port()
    server = S3Server(port, ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
    server.server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"relay-{secrets.token_hex(6)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/relay", server
    finally:
        server.stop()
