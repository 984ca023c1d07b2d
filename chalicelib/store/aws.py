"""AWS clients, created on first use and cached for the life of the process.

Lazily, because a client created at import time would exist before a test's moto mock starts
(and would talk to the real network), and because a Lambda function that never touches S3 should
not pay for building an S3 client. Retries are bounded and explicit: standard mode with jittered
backoff, short timeouts, so a throttled request ends as a 503 well within API Gateway's limit.

A request also has a deadline (``deadline``): no attempt of any call starts once the invocation
could not finish it — one attempt takes at most ``ATTEMPT_SECONDS`` — before Lambda's own timeout.
Without it, a request that makes several calls to a database that keeps timing out would run into
the Lambda timeout, which API Gateway reports as a bare 502/504 instead of our 503.
"""

from __future__ import annotations

import contextvars
import functools
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from chalicelib.util import clock, observability

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
# Left for the code around the calls: building the response, logging.
_MARGIN_SECONDS = 0.5

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("aws_deadline", default=None)


class DeadlineExceeded(Exception):
    """The request's time ran out before an AWS call could be tried (again): nothing was sent."""


@contextmanager
def deadline(lambda_context: Any) -> Iterator[None]:
    """Bound the AWS calls made inside the block by the invocation's remaining time.

    No bound when the context cannot tell its remaining time (event handlers run by other means).
    """
    end = None
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        end = clock.monotonic() + remaining() / 1000 - ATTEMPT_SECONDS - _MARGIN_SECONDS
    token = _deadline.set(end)
    try:
        yield
    finally:
        _deadline.reset(token)


def _enforce_deadline(**_kwargs: Any) -> None:
    """``before-send``: every attempt, retries included, passes here before it leaves."""
    end = _deadline.get()
    if end is not None and clock.monotonic() >= end:
        raise DeadlineExceeded("the request ran out of time before this AWS call")


def _config() -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        tcp_keepalive=True,
    )


def _bounded(client: Any) -> Any:
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-send.{service}", _enforce_deadline, unique_id="request-deadline")
    return observability.instrument(client)


@functools.cache
def _session() -> Any:
    # botocore directly: boto3's session layer adds ~25 ms to every cold start and nothing the
    # service uses (no resources, no waiters on the request path).
    import botocore.session

    return botocore.session.get_session()


@contextmanager
def _long_lived() -> Iterator[None]:
    """The cyclic garbage collector paused inside the block, and what exists after it frozen.

    Importing botocore and building a client allocate well over a hundred thousand objects (the
    service model) that live as long as the process, as the modules do. Left to the collector, a
    cold start pays for generation-2 collections that walk the whole heap for nothing: one such
    pass cost a cold ``POST`` 25–50 ms of CPU here (the request's validation had brought it over
    the threshold; docs/PERFORMANCE.md). Frozen objects are never walked again; refcounting still
    frees them, only cycles among them stay (``reset`` unfreezes, for the tests' many clients).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _client(service: str, config: Any = None) -> Any:
    with _long_lived():
        return _bounded(_session().create_client(service, config=config or _config()))


@functools.cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@functools.cache
def s3() -> S3Client:
    from botocore.config import Config

    # SigV4 and virtual-host-free URLs work against both AWS and the local emulator.
    client: S3Client = _client("s3", _config().merge(Config(signature_version="s3v4", s3={"addressing_style": "path"})))
    return client


@functools.cache
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@functools.cache
def ssm() -> Any:
    """Parameter Store, for the stage's secrets (read rarely: ``secret_store`` caches)."""
    return _client("ssm")


def reset() -> None:
    """Forget every cached client (tests start each moto mock with fresh clients)."""
    for getter in (_session, dynamodb, s3, sqs, ssm):
        getter.cache_clear()
    gc.unfreeze()
