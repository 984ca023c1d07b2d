"""Idempotency-Key on POST /items: replay, reuse with another body, in flight, failures."""

from __future__ import annotations

import pytest

from tests.unit.helpers import assert_problem, body


def test_same_key_same_body_replays_without_creating(tenant):
    headers = {"Idempotency-Key": "order-42"}
    first = tenant.request("POST", "/items", {"name": "n", "data": {"a": 1, "b": 2}}, headers=headers)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = tenant.request("POST", "/items", raw='{"data": {"b": 2, "a": 1}, "name": "n"}', headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(body(tenant.request("GET", "/items"))["items"]) == 1


def test_same_key_other_body_is_422(tenant):
    headers = {"Idempotency-Key": "k-1"}
    assert tenant.request("POST", "/items", {"name": "one"}, headers=headers).status_code == 201
    assert_problem(tenant.request("POST", "/items", {"name": "two"}, headers=headers), 422, "idempotency-key-reused")
    assert [i["name"] for i in body(tenant.request("GET", "/items"))["items"]] == ["one"]


def test_key_in_flight_is_409(tenant, app_module, monkeypatch):
    """While the first request runs, a second one with the same key is refused."""
    from chalicelib.items import service as items

    headers = {"Idempotency-Key": "slow"}
    seen: list[int] = []
    real_create = items.ItemService.create

    def create_and_retry_meanwhile(self, tenant_name, payload, completion=None):
        inner = tenant.request("POST", "/items", {"name": "n"}, headers=headers)
        seen.append(inner.status_code)
        assert_problem(inner, 409, "conflict")
        assert inner.headers["Retry-After"]
        return real_create(self, tenant_name, payload, completion)

    monkeypatch.setattr(items.ItemService, "create", create_and_retry_meanwhile)
    assert tenant.request("POST", "/items", {"name": "n"}, headers=headers).status_code == 201
    assert seen == [409]


def test_failed_requests_are_not_remembered(tenant):
    headers = {"Idempotency-Key": "retry-me"}
    tenant.request("POST", "/items", {"id": "taken", "name": "n"})
    assert_problem(tenant.request("POST", "/items", {"id": "taken", "name": "n"}, headers=headers), 409, "conflict")
    tenant.request("DELETE", "/items/taken")
    retried = tenant.request("POST", "/items", {"id": "taken", "name": "n"}, headers=headers)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_invalid_body_with_key_is_422_and_key_stays_free(tenant):
    headers = {"Idempotency-Key": "fix-then-send"}
    assert_problem(tenant.request("POST", "/items", {"name": ""}, headers=headers), 422, "validation-error")
    assert tenant.request("POST", "/items", {"name": "fixed"}, headers=headers).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tinside", "naïve"])
def test_malformed_keys_are_400(tenant, key):
    response = tenant.request("POST", "/items", {"name": "n"}, headers={"Idempotency-Key": key})
    assert_problem(response, 400, "bad-request")
    assert body(tenant.request("GET", "/items"))["items"] == []


def test_longest_key_works(tenant):
    assert tenant.request("POST", "/items", {"name": "n"}, headers={"Idempotency-Key": "~" * 255}).status_code == 201


def test_replay_is_remembered_for_24_hours_then_forgotten(tenant):
    import os
    import time

    from chalicelib.store import aws

    headers = {"Idempotency-Key": "day-old"}
    first = body(tenant.request("POST", "/items", {"name": "n"}, headers=headers))
    table = os.environ["TABLE_NAME"]
    records = aws.dynamodb().query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": {"S": f"T#{tenant.name}"}, ":p": {"S": "IDEMPOTENCY#"}},
    )["Items"]
    assert len(records) == 1
    expiry = int(records[0]["ttl"]["N"])
    assert abs(expiry - (time.time() + 24 * 3600)) < 60
    # A day later (DynamoDB's TTL may not have removed the record yet): the key is free again.
    aws.dynamodb().update_item(
        TableName=table, Key={"pk": records[0]["pk"], "sk": records[0]["sk"]},
        UpdateExpression="SET #t = :t", ExpressionAttributeNames={"#t": "ttl"},
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 1)}},
    )
    second = tenant.request("POST", "/items", {"name": "n"}, headers=headers)
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert body(second)["id"] != first["id"]
