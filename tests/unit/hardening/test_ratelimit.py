"""Rate limiting per API key (API.md "Rate limiting") and what it costs."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chalicelib.config.settings import get_settings
from chalicelib.web import ratelimit
from tests.faults import on_pk_prefix
from tests.unit.conftest import make_tenant


def _item_calls(injector):
    """DynamoDB calls a request made, leaving out the authorizer's key lookup."""
    return [(op, params) for op, params in injector.calls
            if not str(params.get("Key", {}).get("pk", {}).get("S", "")).startswith("KEY#")]


class Clock:
    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter_table(aws_mock):
    ratelimit.forget_all()
    yield get_settings().table_name
    ratelimit.forget_all()


def _key_id(tenant) -> str:
    from chalicelib.auth import apikeys

    return apikeys.authenticate(tenant.key, get_settings().table_name).key_id


# -- the algorithm, on a clock the test controls -------------------------------------------------

def test_burst_then_steady_rate(limiter_table):
    clock = Clock()
    limiter = ratelimit.RateLimiter(limiter_table, ratelimit.Limit(period=Decimal("0.5"), burst=3), clock)
    assert [limiter.decide("k-burst").admitted for _ in range(3)] == [True, True, True]
    refused = limiter.decide("k-burst")
    assert not refused.admitted
    assert refused.retry_after == 1  # one period (0.5 s) until a slot frees, rounded up
    clock.now += 0.5
    assert limiter.decide("k-burst").admitted
    assert not limiter.decide("k-burst").admitted
    clock.now += 10  # idle: the bucket refills to the burst, not beyond
    assert [limiter.decide("k-burst").admitted for _ in range(4)] == [True, True, True, False]


def test_retry_after_counts_whole_seconds_to_the_next_slot(limiter_table):
    clock = Clock()
    limiter = ratelimit.RateLimiter(limiter_table, ratelimit.Limit(period=Decimal("4"), burst=1), clock)
    assert limiter.decide("k-slow").admitted
    assert limiter.decide("k-slow").retry_after == 4
    clock.now += 2.5
    assert limiter.decide("k-slow").retry_after == 2


def test_keys_are_independent(limiter_table):
    clock = Clock()
    limiter = ratelimit.RateLimiter(limiter_table, ratelimit.Limit(period=Decimal(1), burst=1), clock)
    assert limiter.decide("k-one").admitted
    assert not limiter.decide("k-one").admitted
    assert limiter.decide("k-two").admitted


def test_refusal_from_memory_costs_no_call_admission_costs_one(limiter_table, faults):
    clock = Clock()
    limiter = ratelimit.RateLimiter(limiter_table, ratelimit.Limit(period=Decimal(1), burst=2), clock)
    limiter.decide("k-cost")
    assert faults.operations() == ["UpdateItem"]
    limiter.decide("k-cost")
    assert faults.operations() == ["UpdateItem", "UpdateItem"]
    for _ in range(50):
        assert not limiter.decide("k-cost").admitted
    assert len(faults.calls) == 2


def test_state_is_shared_between_containers(limiter_table):
    """Two containers (two memories) draw on the same bucket through DynamoDB."""
    clock = Clock()
    limit = ratelimit.Limit(period=Decimal(1), burst=2)
    first = ratelimit.RateLimiter(limiter_table, limit, clock)
    assert first.decide("k-shared").admitted
    ratelimit.forget_all()  # the second container has never seen this key
    second = ratelimit.RateLimiter(limiter_table, limit, clock)
    assert second.decide("k-shared").admitted
    assert not second.decide("k-shared").admitted


def test_a_stale_memory_is_corrected_by_the_failed_condition(limiter_table, faults):
    clock = Clock()
    limit = ratelimit.Limit(period=Decimal(1), burst=3)
    limiter = ratelimit.RateLimiter(limiter_table, limit, clock)
    assert limiter.decide("k-stale").admitted  # remembers TAT = now + 1
    # Another container admits two requests meanwhile (TAT = now + 3): this one's memory is stale.
    remembered = dict(ratelimit._remembered)
    ratelimit.forget_all()
    assert limiter.decide("k-stale").admitted
    assert limiter.decide("k-stale").admitted
    ratelimit._remembered.clear()
    ratelimit._remembered.update(remembered)
    faults.clear()
    refused = limiter.decide("k-stale")
    assert not refused.admitted  # the stored TAT, not the stale memory, decided
    assert [op for op, _ in faults.calls] == ["UpdateItem"]
    assert len(faults.calls) == 1


def test_endless_contention_is_refused_not_looped(limiter_table, faults):
    clock = Clock()
    limiter = ratelimit.RateLimiter(limiter_table, ratelimit.Limit(period=Decimal(1), burst=5), clock)
    faults.add("UpdateItem", "condition", when=on_pk_prefix("RATE#"))
    decision = limiter.decide("k-contended")
    assert not decision.admitted
    assert len(faults.calls) == ratelimit.MAX_ATTEMPTS


def test_settings_validation():
    from chalicelib.config.settings import ConfigurationError, Settings

    base = get_settings()
    with pytest.raises(ConfigurationError):
        ratelimit.limit_of(Settings(**{**base.__dict__, "rate_limit_rps": -1.0, "rate_limit_burst": 1}))
    with pytest.raises(ConfigurationError):
        ratelimit.limit_of(Settings(**{**base.__dict__, "rate_limit_rps": float("inf"), "rate_limit_burst": 1}))
    with pytest.raises(ConfigurationError):
        ratelimit.limit_of(Settings(**{**base.__dict__, "rate_limit_rps": 1.0, "rate_limit_burst": -1}))
    limit = ratelimit.limit_of(Settings(**{**base.__dict__, "rate_limit_rps": 2.5, "rate_limit_burst": 0}))
    assert limit == ratelimit.Limit(period=Decimal("0.4"), burst=3)


# -- through the API ---------------------------------------------------------------------------

def test_disabled_by_default_and_simple_routes_make_one_call(tenant, faults):
    """RATE_LIMIT_RPS unset: no limiter call at all; each simple route is one DynamoDB call."""
    created = json.loads(tenant.request("POST", "/items", {"id": "one-call", "name": "x"}).body)
    routes = [
        ("POST", "/items", {"name": "created"}),
        ("GET", "/items/one-call", None),
        ("GET", "/items", None),
        ("PUT", "/items/one-call", {"name": "replaced"}),
        ("PATCH", "/items/one-call", {"name": "patched", "data": {"k": 1}}),
        ("DELETE", "/items/one-call", None),
    ]
    assert created["version"] == 1
    for method, path, body in routes:
        faults.clear()
        response = tenant.request(method, path, body)
        assert response.status_code < 300, (method, response.body)
        calls = _item_calls(faults)
        assert len(calls) == 1, (method, calls)
        assert not any(str(p.get("Key", {}).get("pk", {}).get("S", "")).startswith("RATE#") for _, p in calls)
    for _ in range(30):
        assert tenant.request("GET", "/items").status_code == 200


def test_enabled_adds_one_conditional_update(tenant, faults, rate_limited):
    rate_limited(100, 100)
    faults.clear()
    assert tenant.request("GET", "/items/nothing-here").status_code == 404
    calls = _item_calls(faults)
    assert [op for op, _ in calls] == ["UpdateItem", "GetItem"]
    assert calls[0][1]["Key"]["pk"]["S"].startswith("RATE#")


def test_over_the_rate_is_429_with_retry_after_and_other_keys_unaffected(client, tenant, rate_limited, fake_clock):
    rate_limited(0.5, 3)  # time stands still: however slow the machine, the fourth request is over
    other = make_tenant(client)
    statuses = [tenant.request("GET", "/items").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = tenant.request("POST", "/items", {"name": "refused"})
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Request-Id"]
    assert refused.headers["Access-Control-Allow-Origin"]
    assert refused.headers["Cache-Control"] == "no-store"
    problem = json.loads(refused.body)
    assert problem["type"] == "/problems/rate-limited"
    assert problem["status"] == 429
    assert problem["request_id"] == refused.headers["X-Request-Id"]
    assert other.request("GET", "/items").status_code == 200


def test_refused_requests_change_nothing(tenant, rate_limited, monkeypatch):
    rate_limited(0.01, 1)
    assert tenant.request("POST", "/items", {"id": "first", "name": "a"}).status_code == 201
    assert tenant.request("POST", "/items", {"id": "second", "name": "b"}).status_code == 429
    monkeypatch.setenv("RATE_LIMIT_RPS", "0")
    assert tenant.request("GET", "/items/second").status_code == 404
    assert tenant.request("GET", "/items/first").status_code == 200


def test_the_key_recovers_after_retry_after(tenant, rate_limited, fake_clock):
    # Time moves only when the test says: three requests land in the same instant on any machine.
    rate_limited(1, 2)
    responses = [tenant.request("GET", "/items") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    retry_after = int(responses[-1].headers["Retry-After"])
    assert retry_after == 1
    fake_clock.advance(retry_after - 0.5)
    assert tenant.request("GET", "/items").status_code == 429  # not before
    fake_clock.advance(0.5)
    assert tenant.request("GET", "/items").status_code == 200
    assert tenant.request("GET", "/items").status_code == 429


def test_health_and_openapi_are_not_limited(client, rate_limited):
    rate_limited(0.01, 1)
    assert all(client.http.get("/health").status_code == 200 for _ in range(5))
    assert all(client.http.get("/openapi.json").status_code == 200 for _ in range(3))


def test_limiter_unavailable_admits_the_request(tenant, faults, rate_limited):
    rate_limited(1, 1)
    faults.add("UpdateItem", "throttle", when=on_pk_prefix("RATE#"))
    assert tenant.request("GET", "/items").status_code == 200
    assert tenant.request("GET", "/items").status_code == 200
    limiter_attempts = [op for op, body in faults.calls if op == "UpdateItem"]
    assert len(limiter_attempts) == 2  # it was asked both times, and both times it could not answer


def test_misconfigured_limit_is_a_problem_document_not_a_crash(tenant, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_RPS", "-3")
    response = tenant.request("GET", "/items")
    assert response.status_code == 500
    assert json.loads(response.body)["type"] == "/problems/internal-error"
