"""Every DynamoDB call of every items route, failing every way it can fail.

For each route the request is first traced without faults; then, for every call in the trace,
the same request runs on a fresh tenant with that call throttled beyond the client's retries,
timing out before DynamoDB sees it, or timing out after DynamoDB applied it (the response lost).
Every outcome must be 503 ``service-unavailable`` with ``Retry-After`` (never a 500), the tenant's
data must show the request either not applied at all or applied completely — once — and the
client's retry of the same request must then succeed without applying anything twice.

A fault that fires once and then clears (the client's own retries get through) must be invisible
to the client: same status as without faults, the write applied exactly once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from chalicelib.store.codec import from_item
from chalicelib.store.layout import tenant_pk
from tests.faults import Injector, key_of
from tests.unit.conftest import Tenant, make_tenant
from tests.unit.helpers import assert_problem

TABLE = "items-test"


def records(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """The tenant's partition, read around the fault injector: ``{sk: record}``."""
    client = boto3.client("dynamodb")
    pages = client.get_paginator("query").paginate(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": tenant_pk(tenant.name)}},
        ConsistentRead=True,
    )
    return {item["sk"]["S"]: from_item(item) for page in pages for item in page["Items"]}


def items_of(tenant: Tenant) -> dict[str, dict[str, Any]]:
    return {sk: r for sk, r in records(tenant).items() if sk.startswith("ITEM#")}


_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# What a write decides about an item (not when it happened, nor its bookkeeping).
ITEM_FIELDS = ("id", "name", "description", "tags", "data", "expires_at", "version", "attachment_count")


def _normal(value: Any) -> Any:
    """Server-assigned ids and timestamps differ from run to run; what was written does not."""
    if isinstance(value, str):
        return _TIMESTAMP.sub("<time>", _ULID.sub("<id>", value))
    if isinstance(value, dict):
        return {_normal(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def shape(sk: str, record: dict[str, Any]) -> dict[str, Any]:
    if sk.startswith("ITEM#"):
        return {k: record.get(k) for k in ITEM_FIELDS}
    return {k: _normal(v) for k, v in record.items() if k not in ("pk", "due_pk", "write_token", "ttl")}


def state(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """The tenant's data as writes decide it (idempotency records and keys are bookkeeping)."""
    return {
        _normal(sk): shape(sk, record)
        for sk, record in records(tenant).items()
        if not sk.startswith(("IDEMPOTENCY#", "APIKEY#"))
    }


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Prepares the tenant; returns names to format ``path`` with (ids the server assigned).
    setup: Callable[[Tenant], dict[str, str] | None] = lambda tenant: None
    # The request is safe for the client to repeat after a 503 (it promises nothing else).
    retry_safe: bool = True
    expected_status: int = 200
    # When DynamoDB applied the request but the answer was lost, the client's automatic retry meets
    # the result: a deleted item cannot tell who deleted it, so the retry may answer 404.
    lost_answer_statuses: tuple[int, ...] = ()
    content_type: str = "application/json"

    def prepare(self, tenant: Tenant) -> None:
        tenant.names = self.setup(tenant) or {}  # type: ignore[attr-defined]

    def send(self, tenant: Tenant) -> Any:
        path = self.path.format(**getattr(tenant, "names", {}))
        return tenant.request(self.method, path, self.body, headers=self.headers, content_type=self.content_type)


def _seed(tenant: Tenant) -> None:
    created = tenant.request("POST", "/items", {"id": "it", "name": "seed", "data": {"a": {"x": 1}, "n": 1}})
    assert created.status_code == 201


ATTACHMENT = {"filename": "scan.png", "content_type": "image/png", "size": 10}
IMPORT = {"format": "jsonl", "size": 100}


def _seed_attachment(tenant: Tenant) -> dict[str, str]:
    _seed(tenant)
    created = tenant.request("POST", "/items/it/attachments", ATTACHMENT)
    assert created.status_code == 201, created.body
    return {"att": json.loads(created.body)["id"]}


def _seed_import(tenant: Tenant) -> dict[str, str]:
    created = tenant.request("POST", "/imports", IMPORT)
    assert created.status_code == 201, created.body
    return {"imp": json.loads(created.body)["id"]}


SCENARIOS = [
    Scenario("create", "POST", "/items", {"id": "new", "name": "fresh", "data": {"v": 0.1}},
             retry_safe=False, expected_status=201),
    Scenario("create-server-id", "POST", "/items", {"name": "fresh"}, retry_safe=False, expected_status=201),
    Scenario("create-idempotent", "POST", "/items", {"name": "fresh", "data": {"v": 2}},
             headers={"Idempotency-Key": "order-1"}, expected_status=201),
    Scenario("create-idempotent-client-id", "POST", "/items", {"id": "mine", "name": "fresh"},
             headers={"Idempotency-Key": "order-2"}, expected_status=201),
    Scenario("get", "GET", "/items/it", setup=_seed),
    Scenario("list", "GET", "/items?limit=5", setup=_seed),
    Scenario("put", "PUT", "/items/it", {"name": "replaced", "tags": ["t"]}, setup=_seed),
    Scenario("put-if-match", "PUT", "/items/it", {"name": "replaced"}, headers={"If-Match": '"1"'}, setup=_seed),
    Scenario("patch-in-place", "PATCH", "/items/it", {"name": "patched", "data": {"n": 2, "new": True}},
             setup=_seed, content_type="application/merge-patch+json"),
    Scenario("patch-in-place-if-match", "PATCH", "/items/it", {"data": {"n": None}}, headers={"If-Match": '"1"'},
             setup=_seed, content_type="application/merge-patch+json"),
    Scenario("patch-merged", "PATCH", "/items/it", {"data": {"a": {"y": 2}}}, setup=_seed,
             content_type="application/merge-patch+json"),
    Scenario("patch-merged-if-match", "PATCH", "/items/it", {"data": {"a": {"x": None}}}, headers={"If-Match": '"1"'},
             setup=_seed, content_type="application/merge-patch+json"),
    Scenario("delete", "DELETE", "/items/it", setup=_seed, expected_status=204, lost_answer_statuses=(404,)),
    Scenario("delete-if-match", "DELETE", "/items/it", headers={"If-Match": '"1"'}, setup=_seed, expected_status=204,
             lost_answer_statuses=(404,)),
    Scenario("attach", "POST", "/items/it/attachments", ATTACHMENT, setup=_seed, retry_safe=False, expected_status=201),
    Scenario("attach-idempotent", "POST", "/items/it/attachments", ATTACHMENT, headers={"Idempotency-Key": "a-1"},
             setup=_seed, expected_status=201),
    Scenario("attachments-list", "GET", "/items/it/attachments", setup=_seed_attachment),
    Scenario("attachment-get", "GET", "/items/it/attachments/{att}", setup=_seed_attachment),
    Scenario("attachment-delete", "DELETE", "/items/it/attachments/{att}", setup=_seed_attachment,
             expected_status=204, lost_answer_statuses=(404,)),
    Scenario("import", "POST", "/imports", IMPORT, retry_safe=False, expected_status=201),
    Scenario("import-idempotent", "POST", "/imports", IMPORT, headers={"Idempotency-Key": "i-1"}, expected_status=201),
    Scenario("imports-list", "GET", "/imports", setup=_seed_import),
    Scenario("import-get", "GET", "/imports/{imp}", setup=_seed_import),
]


def _step(operation: str, params: dict[str, Any]) -> tuple[str, str]:
    """A call as (operation, what it touches): key prefix for single items, else nothing."""
    pk, sk = key_of(params)
    if pk.startswith("KEY#"):
        return operation, "KEY#"
    return operation, sk.split("#", 1)[0] + "#" if sk else ""


def _matcher(target: str) -> Callable[[dict[str, Any]], bool]:
    def matches(body: dict[str, Any]) -> bool:
        return _step("", body)[1] == target

    return matches


def trace(client: Any, faults: Injector, scenario: Scenario) -> list[tuple[str, str]]:
    tenant = make_tenant(client)
    scenario.prepare(tenant)
    faults.clear()
    response = scenario.send(tenant)
    assert response.status_code == scenario.expected_status, response.body
    steps = []
    for operation, params in faults.attempts:  # what went on the wire (a presigned form does not)
        step = _step(operation, params)
        if step not in steps:
            steps.append(step)
    return steps


def _ideal(client: Any, scenario: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """Item shapes before and after a fault-free run of the scenario, on a fresh tenant."""
    tenant = make_tenant(client)
    scenario.prepare(tenant)
    before = state(tenant)
    scenario.send(tenant)
    return before, state(tenant)


def _normalise(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Server-assigned ids differ from run to run; compare what was written."""
    return sorted(({k: v for k, v in s.items() if k != "id"} for s in snapshot.values()), key=repr)


def _check_state(tenant: Tenant, before: dict[str, Any], after: dict[str, Any]) -> str:
    now = state(tenant)
    if _normalise(now) == _normalise(after):
        return "applied once"  # also what a read leaves behind
    if _normalise(now) == _normalise(before):
        return "not applied"
    raise AssertionError(f"partial or repeated write:\nbefore {before}\nideal {after}\nnow {now}")


def _check_retry(tenant: Tenant, scenario: Scenario, outcome: str, retried: Any, before: dict[str, Any],
                 after: dict[str, Any], where: str) -> None:
    """The client repeats the request after the 503, with no fault left.

    If the first request was not applied, the retry is the request: applied once. If it was
    (its response was lost), an ``Idempotency-Key`` replays it; any other retry is a new request on
    top of it — ``If-Match`` no longer matches (412), the item is already deleted (404), or the
    same content is written again — and the data still shows the content written once.
    """
    if outcome == "not applied" or scenario.headers.get("Idempotency-Key"):
        assert retried.status_code == scenario.expected_status, (where, "retry", retried.body)
        assert _check_state(tenant, before, after) == "applied once", (where, "retry")
        if outcome == "applied once" and scenario.method == "POST":
            assert retried.headers["Idempotent-Replayed"] == "true", where
    else:
        assert retried.status_code in (scenario.expected_status, 404, 412), (where, "retry", retried.body)
        now = {sk: {**s, "version": None} for sk, s in state(tenant).items()}
        assert _normalise(now) == _normalise({sk: {**s, "version": None} for sk, s in after.items()}), where
    _no_claims_left(tenant)


def _no_claims_left(tenant: Tenant) -> None:
    """No idempotency claim stays in progress after a request ended (it would block retries)."""
    for sk, record in records(tenant).items():
        if sk.startswith("IDEMPOTENCY#"):
            assert record["status"] == "COMPLETED", record


FAULTS = ["throttle", "timeout", "timeout-applied"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_persistent_faults_on_every_call(client, faults, scenario):
    steps = trace(client, faults, scenario)
    before, after = _ideal(client, scenario)
    injected = 0
    for operation, target in steps:
        if target == "KEY#":
            continue  # the authorizer: test_authorizer_faults
        for kind in FAULTS:
            tenant = make_tenant(client)
            scenario.prepare(tenant)
            faults.clear()
            faults.add(operation, kind.removesuffix("-applied"), when=_matcher(target),
                       applied=kind.endswith("-applied"))
            response = scenario.send(tenant)
            where = f"{scenario.name}: {kind} on {operation} {target}"
            assert response.status_code == 503, (where, response.status_code, response.body)
            assert_problem(response, 503, "service-unavailable")
            assert int(response.headers["Retry-After"]) >= 1, where
            outcome = _check_state(tenant, before, after)
            faults.clear()
            if scenario.retry_safe:
                retried = scenario.send(tenant)
                _check_retry(tenant, scenario, outcome, retried, before, after, where)
            injected += 1
            if before == after:
                outcome = "nothing to apply"
            print(f"{where}: 503, {outcome}" + (", retry ok" if scenario.retry_safe else ""))
    assert injected


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_transient_faults_are_invisible(client, faults, scenario):
    """One failed attempt per call, then the client's retry gets through: as if nothing happened."""
    steps = trace(client, faults, scenario)
    before, after = _ideal(client, scenario)
    for operation, target in steps:
        for kind in FAULTS:
            tenant = make_tenant(client)
            scenario.prepare(tenant)
            faults.clear()
            faults.add(operation, kind.removesuffix("-applied"), times=1, when=_matcher(target),
                       applied=kind.endswith("-applied"))
            response = scenario.send(tenant)
            where = f"{scenario.name}: one {kind} on {operation} {target}"
            allowed = (scenario.expected_status,)
            if kind == "timeout-applied":
                allowed += scenario.lost_answer_statuses
            assert response.status_code in allowed, (where, response.status_code, response.body)
            assert _check_state(tenant, before, after) == "applied once", where
            if scenario.headers.get("Idempotency-Key"):
                _no_claims_left(tenant)
            print(f"{where}: {response.status_code}, " + ("no change" if before == after else "applied once"))


@pytest.mark.parametrize("kind", ["throttle", "timeout"])
def test_authorizer_faults(client, faults, kind):
    tenant = make_tenant(client)
    faults.add("GetItem", kind, when=_matcher("KEY#"))
    response = tenant.request("POST", "/items", {"id": "never", "name": "x"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(response.body)
    assert problem["type"] == "/problems/service-unavailable"
    assert problem["status"] == 503
    faults.clear()
    assert items_of(tenant) == {}
    assert tenant.request("GET", "/items/never").status_code == 404
