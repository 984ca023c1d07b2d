"""AWS clients, created on first use and cached for the life of the process.

Lazily, because a client created at import time would exist before a test's moto mock starts
(and would talk to the real network), and because a Lambda function that never touches S3 should
not pay for building an S3 client. Retries are bounded and explicit: standard mode with jittered
backoff, short timeouts, so a throttled request ends as a 503 well within API Gateway's limit.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def _config() -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=2,
        read_timeout=5,
        tcp_keepalive=True,
    )


@functools.cache
def _session() -> Any:
    # botocore directly: boto3's session layer adds ~25 ms to every cold start and nothing the
    # service uses (no resources, no waiters on the request path).
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _session().create_client("dynamodb", config=_config())
    return client


@functools.cache
def s3() -> S3Client:
    from botocore.config import Config

    # SigV4 and virtual-host-free URLs work against both AWS and the local emulator.
    config = _config().merge(Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    client: S3Client = _session().create_client("s3", config=config)
    return client


@functools.cache
def sqs() -> SQSClient:
    client: SQSClient = _session().create_client("sqs", config=_config())
    return client


def reset() -> None:
    """Forget every cached client (tests start each moto mock with fresh clients)."""
    for getter in (_session, dynamodb, s3, sqs):
        getter.cache_clear()
