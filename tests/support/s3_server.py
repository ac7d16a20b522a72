"""An S3-compatible server for tests: moto's standalone server (S3 over HTTP) on 127.0.0.1 and a
free port, in a thread of the test process; nothing leaves the machine.

    from s3_server import s3_server, s3_env
    with s3_server() as endpoint: ...          # http://127.0.0.1:PORT, stopped afterwards
    s3_env(monkeypatch)                        # dummy credentials; botocore looks nowhere else
    make_bucket(endpoint) -> name              # a new bucket with a unique name
"""

from __future__ import annotations

import logging
import socket
import uuid
from contextlib import contextmanager
from typing import Iterator


def s3_env(monkeypatch) -> None:
    """Credentials for moto (any will do) and no other place botocore may look for some."""
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true"),
                       ("AWS_CONFIG_FILE", "/nonexistent"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")):
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)


@contextmanager
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"test-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
