"""Fixtures for the robustness and security tests: fault injection on the DynamoDB client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults import Injector, injected


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries keep their number and their rules, not their sleeping (tests stay fast)."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


@pytest.fixture
def faults(aws_mock: None, no_backoff: None) -> Iterator[Injector]:
    """An injector on fresh DynamoDB and S3 clients (fresh retry quota), removed afterwards."""
    from chalicelib.store import aws

    aws.reset()
    with injected(aws.dynamodb(), aws.s3()) as injector:
        yield injector
    aws.reset()


@pytest.fixture
def rate_limited(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Enable the rate limiter for one test: ``rate_limited(rps, burst)``."""
    from chalicelib.web import ratelimit

    def enable(rps: float, burst: int) -> None:
        monkeypatch.setenv("RATE_LIMIT_RPS", str(rps))
        monkeypatch.setenv("RATE_LIMIT_BURST", str(burst))

    ratelimit.forget_all()
    yield enable
    ratelimit.forget_all()


@pytest.fixture
def fake_clock() -> Iterator[Any]:
    """The service reads time from a clock the test moves: timing rules without waiting."""
    from chalicelib.util import clock
    from tests.fake_clock import FakeClock

    fake = FakeClock()
    with clock.sources(fake.time, fake.monotonic):
        yield fake
