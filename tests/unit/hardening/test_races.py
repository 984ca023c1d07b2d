"""Conditional-check races, double faults and misconfiguration: 4xx or 503 as the contract says.

A race is a concurrent writer's request landing between two steps of ours, decided by DynamoDB's
conditions; an injected condition failure stands for a writer we cannot see. Neither may ever
produce a 500 or a partial write.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from chalicelib.store.layout import tenant_pk
from tests.unit.conftest import make_tenant
from tests.unit.hardening.test_faults import TABLE, _matcher, items_of, records
from tests.unit.helpers import assert_problem, body

PATCH = "application/merge-patch+json"


def _other_writer_sets_name(tenant, item_id: str, name: str):
    """A write by another client (another container), straight to the table."""

    def write() -> None:
        boto3.client("dynamodb").update_item(
            TableName=TABLE,
            Key={"pk": {"S": tenant_pk(tenant.name)}, "sk": {"S": f"ITEM#{item_id}"}},
            UpdateExpression="SET #n = :n, #v = #v + :one, #w = :w",
            ExpressionAttributeNames={"#n": "name", "#v": "version", "#w": "write_token"},
            ExpressionAttributeValues={":n": {"S": name}, ":one": {"N": "1"}, ":w": {"S": "other-writer"}},
        )

    return write


def _other_writer_deletes(tenant, item_id: str):
    def delete() -> None:
        boto3.client("dynamodb").delete_item(
            TableName=TABLE, Key={"pk": {"S": tenant_pk(tenant.name)}, "sk": {"S": f"ITEM#{item_id}"}}
        )

    return delete


def _seed(tenant, item_id: str = "it") -> None:
    assert tenant.request("POST", "/items", {"id": item_id, "name": "seed", "data": {"a": {"x": 1}}}).status_code == 201


# -- real races ------------------------------------------------------------------------------

def test_merged_patch_remerges_onto_a_concurrent_write(client, faults):
    tenant = make_tenant(client)
    _seed(tenant)
    faults.add("UpdateItem", "meanwhile", times=1, when=_matcher("ITEM#"),
               action=_other_writer_sets_name(tenant, "it", "renamed elsewhere"))
    response = tenant.request("PATCH", "/items/it", {"data": {"a": {"y": 2}}}, content_type=PATCH)
    assert response.status_code == 200, response.body
    item = body(response)
    assert item["name"] == "renamed elsewhere"  # the other write survived
    assert item["data"] == {"a": {"x": 1, "y": 2}}  # and so did ours
    assert item["version"] == 3
    assert [op for op, _ in faults.calls].count("UpdateItem") == 2


def test_merged_patch_with_if_match_loses_the_race_cleanly(client, faults):
    tenant = make_tenant(client)
    _seed(tenant)
    faults.add("UpdateItem", "meanwhile", times=1, when=_matcher("ITEM#"),
               action=_other_writer_sets_name(tenant, "it", "renamed elsewhere"))
    response = tenant.request("PATCH", "/items/it", {"data": {"a": {"y": 2}}}, headers={"If-Match": '"1"'},
                              content_type=PATCH)
    assert_problem(response, 412, "precondition-failed")
    assert response.headers["ETag"] == '"2"'
    stored = items_of(tenant)["ITEM#it"]
    assert stored["name"] == "renamed elsewhere"
    assert stored["data"] == {"a": {"x": 1}}


@pytest.mark.parametrize(("method", "payload", "content_type"), [
    ("PUT", {"name": "replaced"}, "application/json"),
    ("PATCH", {"name": "patched"}, PATCH),
    ("PATCH", {"data": {"a": {"y": 1}}}, PATCH),
    ("DELETE", None, "application/json"),
])
def test_a_concurrent_delete_makes_the_write_404(client, faults, method, payload, content_type):
    tenant = make_tenant(client)
    _seed(tenant)
    operation = "DeleteItem" if method == "DELETE" else "UpdateItem"
    faults.add(operation, "meanwhile", times=1, when=_matcher("ITEM#"), action=_other_writer_deletes(tenant, "it"))
    response = tenant.request(method, "/items/it", payload, content_type=content_type)
    assert_problem(response, 404, "not-found")
    assert items_of(tenant) == {}


@pytest.mark.parametrize(("method", "payload", "content_type"), [
    ("PUT", {"name": "replaced"}, "application/json"),
    ("PATCH", {"name": "patched"}, PATCH),
    ("DELETE", None, "application/json"),
])
def test_a_concurrent_write_fails_if_match(client, faults, method, payload, content_type):
    tenant = make_tenant(client)
    _seed(tenant)
    operation = "DeleteItem" if method == "DELETE" else "UpdateItem"
    faults.add(operation, "meanwhile", times=1, when=_matcher("ITEM#"),
               action=_other_writer_sets_name(tenant, "it", "other"))
    response = tenant.request(method, "/items/it", payload, headers={"If-Match": '"1"'}, content_type=content_type)
    assert_problem(response, 412, "precondition-failed")
    assert items_of(tenant)["ITEM#it"]["name"] == "other"


def test_a_concurrent_create_of_the_same_id_is_409(client, faults):
    tenant = make_tenant(client)

    def other_creates() -> None:
        assert tenant.request("POST", "/items", {"id": "same", "name": "theirs"}).status_code == 201

    faults.add("PutItem", "meanwhile", times=1, when=_matcher("ITEM#"), action=other_creates)
    response = tenant.request("POST", "/items", {"id": "same", "name": "mine"})
    assert_problem(response, 409, "conflict")
    assert items_of(tenant)["ITEM#same"]["name"] == "theirs"


def test_idempotency_claim_taken_over_before_completion_writes_nothing(client, faults):
    """Our claim expired and another request with the key took it over: we must not complete it."""
    tenant = make_tenant(client)

    def take_over() -> None:
        dynamodb = boto3.client("dynamodb")
        for sk, record in records(tenant).items():
            if sk.startswith("IDEMPOTENCY#"):
                dynamodb.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": tenant_pk(tenant.name)}, "sk": {"S": sk}},
                    UpdateExpression="SET #o = :o",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":o": {"S": "another-request"}},
                )
                assert record["status"] == "INPROGRESS"

    faults.add("TransactWriteItems", "meanwhile", times=1, action=take_over)
    response = tenant.request("POST", "/items", {"name": "once"}, headers={"Idempotency-Key": "k"})
    assert_problem(response, 409, "conflict")
    assert response.headers["Retry-After"] == "1"
    assert items_of(tenant) == {}
    claims = [r for sk, r in records(tenant).items() if sk.startswith("IDEMPOTENCY#")]
    assert [c["owner"] for c in claims] == ["another-request"]  # theirs, untouched


# -- injected condition failures: always a 4xx, nothing written --------------------------------

@pytest.mark.parametrize(("method", "path", "payload", "operation", "status", "slug"), [
    ("POST", "/items", {"id": "n", "name": "x"}, "PutItem", 409, "conflict"),
    ("PUT", "/items/it", {"name": "x"}, "UpdateItem", 404, "not-found"),
    ("PATCH", "/items/it", {"name": "x"}, "UpdateItem", 404, "not-found"),
    ("PATCH", "/items/it", {"data": {"a": {"z": 1}}}, "UpdateItem", 404, "not-found"),
    ("DELETE", "/items/it", None, "DeleteItem", 404, "not-found"),
])
def test_condition_failures_without_an_item_are_4xx(client, faults, method, path, payload, operation, status, slug):
    tenant = make_tenant(client)
    _seed(tenant)
    before = items_of(tenant)
    faults.add(operation, "condition", when=_matcher("ITEM#"))
    response = tenant.request(method, path, payload, content_type=PATCH if method == "PATCH" else "application/json")
    assert_problem(response, status, slug)
    assert items_of(tenant) == before


def test_idempotent_create_condition_failure_is_409_and_the_key_stays_usable(client, faults):
    tenant = make_tenant(client)
    faults.add("TransactWriteItems", "condition", times=1)
    headers = {"Idempotency-Key": "k"}
    assert_problem(tenant.request("POST", "/items", {"name": "x"}, headers=headers), 409, "conflict")
    assert items_of(tenant) == {}
    assert [sk for sk in records(tenant) if sk.startswith("IDEMPOTENCY#")] == []
    retried = tenant.request("POST", "/items", {"name": "x"}, headers=headers)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_transaction_cancelled_by_throttling_is_503(client, faults):
    tenant = make_tenant(client)
    faults.add("TransactWriteItems", "cancelled")
    response = tenant.request("POST", "/items", {"name": "x"}, headers={"Idempotency-Key": "k"})
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert items_of(tenant) == {}
    faults.clear()
    assert tenant.request("POST", "/items", {"name": "x"}, headers={"Idempotency-Key": "k"}).status_code == 201
    assert len(items_of(tenant)) == 1


# -- double faults: the write fails and so does the cleanup after it -------------------------------

def _claims(tenant_name: str) -> dict[str, dict]:
    response = boto3.client("dynamodb").query(
        TableName=TABLE, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": tenant_pk(tenant_name)}}, ConsistentRead=True,
    )
    return {i["sk"]["S"]: i for i in response["Items"] if i["sk"]["S"].startswith("IDEMPOTENCY#")}


def _let_claims_expire(tenant_name: str) -> None:
    """The invocation's time has run out: its claims' expiry is in the past, as DynamoDB sees it."""
    for sk in _claims(tenant_name):
        boto3.client("dynamodb").update_item(
            TableName=TABLE, Key={"pk": {"S": tenant_pk(tenant_name)}, "sk": {"S": sk}},
            UpdateExpression="SET in_progress_expiration = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time() * 1000) - 1)}},
        )


def _assert_claim_lasts(tenant_name: str, budget_ms: int, before_ms: int, after_ms: int) -> None:
    """The one claim expires ``budget_ms`` after it was made (bounds measured around the request)."""
    [claim] = _claims(tenant_name).values()
    assert claim["status"]["S"] == "INPROGRESS"
    assert before_ms + budget_ms - 1000 <= int(claim["in_progress_expiration"]["N"]) <= after_ms + budget_ms + 1000


def test_claim_that_cannot_be_released_expires_and_the_retry_then_succeeds(client, faults, monkeypatch):
    from chalicelib.web import idempotency

    # Claims last as long as the invocation may run; here 10 minutes, far longer than any machine
    # takes for the steps below, and the test then ends the invocation's time itself.
    budget_ms = 600_000
    monkeypatch.setattr(idempotency, "_claim_budget", lambda context: idempotency._Budget(budget_ms))
    tenant = make_tenant(client)
    headers = {"Idempotency-Key": "stuck"}
    faults.add("TransactWriteItems", "throttle")
    faults.add("DeleteItem", "throttle", when=_matcher("IDEMPOTENCY#"))
    before_ms = int(time.time() * 1000)
    response = tenant.request("POST", "/items", {"name": "x"}, headers=headers)
    after_ms = int(time.time() * 1000)
    assert_problem(response, 503, "service-unavailable")
    faults.clear()
    _assert_claim_lasts(tenant.name, budget_ms, before_ms, after_ms)
    # The claim is still there: a retry right away is told to wait, and nothing is created.
    waiting = tenant.request("POST", "/items", {"name": "x"}, headers=headers)
    assert_problem(waiting, 409, "conflict")
    assert waiting.headers["Retry-After"] == "1"
    assert items_of(tenant) == {}
    _let_claims_expire(tenant.name)
    retried = tenant.request("POST", "/items", {"name": "x"}, headers=headers)
    assert retried.status_code == 201
    assert len(items_of(tenant)) == 1


def test_claim_without_a_lambda_context_still_expires(aws_mock, faults, monkeypatch):
    from chalicelib.web import idempotency

    monkeypatch.setattr(idempotency, "IN_PROGRESS_BUDGET_MS", 600_000)  # outlasts any slow step below
    faults.add("DeleteItem", "throttle", when=_matcher("IDEMPOTENCY#"))

    def failing() -> dict:
        raise RuntimeError("operation failed")

    arguments = {"table": TABLE, "tenant": "no-context", "route": "POST /x", "key": "k", "body": {}}
    before_ms = int(time.time() * 1000)
    with pytest.raises(Exception, match="busy"):
        idempotency.run(**arguments, operation=failing)
    after_ms = int(time.time() * 1000)
    faults.clear()
    # Without a Lambda context the claim lasts IN_PROGRESS_BUDGET_MS, not the record's 24 hours.
    _assert_claim_lasts("no-context", idempotency.IN_PROGRESS_BUDGET_MS, before_ms, after_ms)
    with pytest.raises(Exception, match="in progress"):
        idempotency.run(**arguments, operation=lambda: {"status": 201, "body": "{}", "headers": {}})
    _let_claims_expire("no-context")
    outcome, replayed = idempotency.run(**arguments, operation=lambda: {"status": 201, "body": "{}", "headers": {}})
    assert (outcome["status"], replayed) == (201, False)


def test_the_stand_in_budget_counts_down_on_the_service_clock(fake_clock):
    from chalicelib.web import idempotency

    budget = idempotency._Budget(1500)
    assert budget.get_remaining_time_in_millis() == 1500
    fake_clock.advance(1.0)
    assert budget.get_remaining_time_in_millis() == 500
    fake_clock.advance(1.0)
    assert budget.get_remaining_time_in_millis() == 0


def test_remembering_the_response_fails_after_the_operation_ran(aws_mock, faults):
    """Without a transaction (an operation that does not use completion_record): the client still
    gets the operation's answer, not a 503 that would invite a duplicate."""
    from chalicelib.web import idempotency

    ran = []

    def operation() -> dict:
        ran.append(1)
        return {"status": 201, "body": json.dumps({"n": len(ran)}), "headers": {}}

    faults.add("UpdateItem", "throttle", when=_matcher("IDEMPOTENCY#"))
    arguments = {"table": TABLE, "tenant": "no-tx", "route": "POST /x", "key": "k", "body": {"a": 1}}
    outcome, replayed = idempotency.run(**arguments, operation=operation)
    assert (outcome["status"], replayed, ran) == (201, False, [1])
    faults.clear()
    with pytest.raises(Exception, match="in progress"):
        idempotency.run(**arguments, operation=operation)
    assert ran == [1]


# -- misconfiguration is a bug to see, not load to shed ------------------------------------------

@pytest.mark.parametrize(("operation", "target", "headers"), [
    ("GetItem", "ITEM#", {}),
    ("PutItem", "IDEMPOTENCY#", {"Idempotency-Key": "k"}),
])
def test_access_denied_is_a_logged_500_not_a_503(client, faults, operation, target, headers, caplog):
    tenant = make_tenant(client)
    faults.add(operation, "denied", when=_matcher(target))
    method, path = ("GET", "/items/x") if operation == "GetItem" else ("POST", "/items")
    response = tenant.request(method, path, {"name": "x"} if method == "POST" else None, headers=headers)
    assert_problem(response, 500, "internal-error")
    assert items_of(tenant) == {}


# -- the request's deadline -------------------------------------------------------------------------

def test_retries_stop_before_the_invocation_would_time_out(client, faults, monkeypatch, fake_clock):
    """A database that keeps timing out: the request ends as a 503 within Lambda's time, never a
    Lambda timeout (which API Gateway would report as a bare 502/504).

    Each timed-out attempt moves the service's clock by 0.2 s (the wait for an answer that never
    came) instead of sleeping, so the count of attempts does not depend on the machine's speed."""
    from chalice.local import LambdaContext

    from chalicelib.store import aws  # 0.3 s of budget after keeping one attempt's worth (and the margin) in reserve.

    remaining_ms = int((aws.ATTEMPT_SECONDS + 0.5 + 0.3) * 1000)
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: remaining_ms)
    tenant = make_tenant(client)
    fault = faults.add("GetItem", "timeout", when=_matcher("ITEM#"), action=lambda: fake_clock.advance(0.2))
    started = fake_clock.monotonic()
    response = tenant.request("GET", "/items/slow")
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert fault.fired == 2  # attempts at 0 and 0.2 s; the third would have started after the deadline (0.3 s)
    assert fake_clock.monotonic() - started == pytest.approx(0.4)


def test_no_deadline_outside_a_request(aws_mock):
    """Event handlers and tools: no request deadline applies, the client's own limits do."""
    from chalicelib.store import aws

    with aws.deadline(object()):
        aws._enforce_deadline()
    aws._enforce_deadline()
