"""The idempotency store's own rules, below the HTTP routes: claims, take-overs, release, races."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from chalicelib.problems import Problem
from chalicelib.store import aws, layout
from chalicelib.web import idempotency

TABLE = "items-test"
OUTCOME: idempotency.Outcome = {"status": 201, "body": '{"id":"x"}', "headers": {"Location": "/items/x"}}


@pytest.fixture
def tenant_name(aws_mock: None) -> str:
    import secrets

    return "claims-" + secrets.token_hex(4)


def _claim(tenant: str, key: str = "k", body: object = None, budget_ms: int = 60_000) -> idempotency.Claim:
    return idempotency.Claim(
        TABLE,
        layout.idempotency_key(tenant, idempotency.key_hash("POST /x", key)),
        idempotency.payload_hash(body if body is not None else {"a": 1}),
        idempotency._Budget(budget_ms),
    )


def _record(claim: idempotency.Claim) -> dict[str, Any] | None:
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key=claim.key, ConsistentRead=True).get("Item")
    return {name: next(iter(value.values())) for name, value in item.items()} if item else None


def _expire_claim(claim: idempotency.Claim) -> None:
    """The invocation that made the claim has run out of time (as DynamoDB's clock sees it)."""
    boto3.client("dynamodb").update_item(
        TableName=TABLE, Key=claim.key, UpdateExpression="SET in_progress_expiration = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time() * 1000) - 1)}},
    )


def _run(tenant: str, operation: Any, key: str = "k", body: object = None) -> tuple[idempotency.Outcome, bool]:
    return idempotency.run(table=TABLE, tenant=tenant, route="POST /x", key=key,
                           body=body if body is not None else {"a": 1}, operation=operation)


# -- the stored form ------------------------------------------------------------------------------

def test_names_and_hashes_are_those_of_the_records_written_before():
    """Records written by the earlier implementation (on Powertools) keep replaying: same sort key,
    same payload fingerprint (values computed with it, aws-lambda-powertools 3.37)."""
    key = layout.idempotency_key("x", idempotency.key_hash("POST /items", "order-42"))
    assert key == {"pk": {"S": "T#x"}, "sk": {"S": "IDEMPOTENCY#74c5357d464dbe5fa2327bf1b5c1e90d"}}
    assert idempotency.payload_hash({"name": "n", "data": {"b": 2, "a": 1}}) == "2238d3b5457dcab44f06d49832b27a98"
    assert idempotency.payload_hash({"data": {"a": 1, "b": 2}, "name": "n"}) == "2238d3b5457dcab44f06d49832b27a98"
    assert idempotency.key_hash("POST /items/é/attachments", "~" * 255) == "3c8913d3476a0e2c4f485b7c93de75a0"


def test_a_record_in_the_earlier_shape_replays(tenant_name):
    claim = _claim(tenant_name)
    now = int(time.time())
    boto3.client("dynamodb").put_item(TableName=TABLE, Item={
        **claim.key,
        "status": {"S": "COMPLETED"},
        "ttl": {"N": str(now + 3600)},
        "in_progress_expiration": {"N": str(now * 1000 - 5000)},
        "data": {"S": json.dumps(OUTCOME, sort_keys=True)},
        "validation": {"S": claim.payload},
        "owner": {"S": "an-earlier-run"},
    })
    assert _run(tenant_name, lambda: pytest.fail("must not run")) == (OUTCOME, True)


def test_a_claim_lasts_the_budget_and_the_record_a_day(tenant_name):
    claim = _claim(tenant_name, budget_ms=5_000)
    before = time.time()
    assert claim.take() is None
    after = time.time()
    record = _record(claim)
    assert record is not None
    assert record["status"] == "INPROGRESS"
    assert record["owner"] == claim.token
    assert before * 1000 + 5_000 - 1000 <= int(record["in_progress_expiration"]) <= after * 1000 + 5_000 + 1000
    assert int(before) + 24 * 3600 <= int(record["ttl"]) <= int(after) + 24 * 3600
    assert claim.complete(OUTCOME)
    completed = _record(claim)
    assert completed is not None
    assert completed["status"] == "COMPLETED"
    assert "in_progress_expiration" not in completed
    assert json.loads(completed["data"]) == OUTCOME


# -- claims ---------------------------------------------------------------------------------------

def test_taking_ones_own_claim_again_continues(tenant_name):
    """The claim's write was applied and its answer lost: the retry of the same call goes on."""
    claim = _claim(tenant_name)
    assert claim.take() is None
    assert claim.take() is None


def test_a_live_claim_of_another_run_is_409_and_another_body_422(tenant_name):
    assert _claim(tenant_name).take() is None
    with pytest.raises(Problem) as in_progress:
        _claim(tenant_name).take()
    assert (in_progress.value.status, in_progress.value.slug) == (409, "conflict")
    assert in_progress.value.headers == {"Retry-After": "1"}
    with pytest.raises(Problem) as reused:
        _claim(tenant_name, body={"a": 2}).take()
    assert (reused.value.status, reused.value.slug) == (422, "idempotency-key-reused")


def test_an_expired_claim_is_taken_over_and_its_first_owner_can_no_longer_touch_it(tenant_name):
    first, second = _claim(tenant_name), _claim(tenant_name)
    assert first.take() is None
    _expire_claim(first)
    assert second.take() is None
    assert _record(second)["owner"] == second.token  # type: ignore[index]
    # The first run comes back late: it can neither free nor complete the key, in or out of a transaction.
    assert not first.release()
    assert not first.complete(OUTCOME)
    with pytest.raises(Exception, match="TransactionCanceled"):
        aws.dynamodb().transact_write_items(TransactItems=[first.completion_record(OUTCOME)])  # type: ignore[list-item]
    assert _record(second)["owner"] == second.token  # type: ignore[index]
    assert _record(second)["status"] == "INPROGRESS"  # type: ignore[index]
    assert second.complete(OUTCOME)
    assert _claim(tenant_name).take() == OUTCOME


def test_a_claim_that_expires_while_refusing_is_asked_for_again(tenant_name):
    """DynamoDB refused the claim while the other run's claim was live; by the time the refusal is
    read, that claim has expired: the claim is tried once more, and taken over."""
    from chalicelib.util import clock

    start = time.time()
    first, second = _claim(tenant_name, budget_ms=60_000), _claim(tenant_name)
    with clock.sources(lambda: start, time.monotonic):
        assert first.take() is None  # live until start + 60 s
    readings = [start, start + 61]  # DynamoDB is asked at start; the refusal is read at start + 61 and later

    def wall() -> float:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    with clock.sources(wall, time.monotonic):
        assert second.take() is None
    assert _record(second)["owner"] == second.token  # type: ignore[index]


def test_a_forgotten_record_is_claimed_afresh(tenant_name):
    first = _claim(tenant_name)
    assert first.take() is None
    assert first.complete(OUTCOME)
    boto3.client("dynamodb").update_item(
        TableName=TABLE, Key=first.key, UpdateExpression="SET #t = :past",
        ExpressionAttributeNames={"#t": "ttl"}, ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    # Even with another body: the day-old record no longer counts.
    again = _claim(tenant_name, body={"other": True})
    assert again.take() is None
    assert _record(again)["owner"] == again.token  # type: ignore[index]


# -- release --------------------------------------------------------------------------------------

def test_release_frees_only_ones_own_claim_in_progress(tenant_name):
    mine, other = _claim(tenant_name), _claim(tenant_name)
    assert mine.take() is None
    assert not other.release()
    assert _record(mine) is not None
    assert mine.release()
    assert _record(mine) is None
    assert not mine.release()  # nothing left to free


def test_a_completed_record_is_never_released(tenant_name):
    claim = _claim(tenant_name)
    assert claim.take() is None
    assert claim.complete(OUTCOME)
    assert not claim.release()
    assert _record(claim)["status"] == "COMPLETED"  # type: ignore[index]


def test_a_failed_operation_is_not_remembered(tenant_name):
    def failing() -> idempotency.Outcome:
        raise Problem("conflict", "taken")

    with pytest.raises(Problem, match="taken"):
        _run(tenant_name, failing)
    assert _record(_claim(tenant_name)) is None
    assert _run(tenant_name, lambda: OUTCOME) == (OUTCOME, False)
    assert _run(tenant_name, lambda: pytest.fail("must not run")) == (OUTCOME, True)


def test_completion_outside_a_run_is_none():
    assert idempotency.completion_record(OUTCOME) is None


# -- concurrent claims ----------------------------------------------------------------------------

class _Serialised:
    """DynamoDB decides each conditional write atomically; moto, called from several threads in one
    process, does not. One call at a time restores what the service relies on (the local stack's
    emulator serialises its requests the same way)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            with self._lock:
                return method(**kwargs)

        return call


def test_concurrent_claims_of_one_key_exactly_one_runs(tenant_name, monkeypatch):
    client = _Serialised(aws.dynamodb())
    monkeypatch.setattr(aws, "dynamodb", lambda: client)
    contenders = 8
    start = threading.Barrier(contenders)
    losers_done = threading.Event()
    lock = threading.Lock()
    ran: list[str] = []
    results: list[tuple[str, Any]] = []

    def operation() -> idempotency.Outcome:
        ran.append(threading.current_thread().name)
        losers_done.wait(timeout=30)  # stay in flight until every other contender has been answered
        return OUTCOME

    def contend() -> None:
        start.wait(timeout=30)
        try:
            result: tuple[str, Any] = ("ok", _run(tenant_name, operation))
        except Problem as problem:
            result = ("problem", (problem.status, problem.slug))
        with lock:
            results.append(result)
            if sum(1 for kind, _ in results if kind == "problem") == contenders - 1:
                losers_done.set()

    threads = [threading.Thread(target=contend, name=f"c{i}") for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ran) == 1
    assert sorted(results, key=repr) == sorted(
        [("ok", (OUTCOME, False))] + [("problem", (409, "conflict"))] * (contenders - 1), key=repr
    )
    assert _run(tenant_name, lambda: pytest.fail("must not run")) == (OUTCOME, True)
