"""One subject of the peer comparison, in a fresh process: ``python bench/peer_child.py SUBJECT ACTION``.

SUBJECT is ``floor`` (bare boto3), ``ours`` (this service's Lambda entry points) or a peer app under
``bench/peers/`` (``seed``, ``powertools``, ``fastapi``). ACTION is

- ``get``, ``post``, ``auth`` (the authorizer with an API key), ``auth_token`` (with a person's
  access token, ``BENCH_TOKEN``): a cold start. Prints the milliseconds from before the first import to
  the first answer, wall clock and this process's CPU time (interpreter start-up is the same for
  every subject and is not counted);
- ``warm``: after the cold ``GET``, ``BENCH_WARM`` more of them, each followed by a raw boto3
  ``GetItem`` of the same item in the same process; prints the medians of both, in microseconds.

The item, tenant and API key come from ``BENCH_TENANT``, ``BENCH_ITEM`` and ``BENCH_KEY``.
"""

from __future__ import annotations

import time

STARTED, CPU_STARTED = time.perf_counter(), time.process_time()

import json
import os
import sys
from collections.abc import Callable
from typing import Any

BODY = {"name": "bench peer", "tags": ["bench"], "data": {"n": 1, "price": "12.50"}}


def floor(action: str, tenant: str, item_id: str) -> Callable[[], None]:
    import boto3

    client = boto3.client("dynamodb")
    table = os.environ["TABLE_NAME"]
    if action == "post":
        import uuid

        def put() -> None:
            new_id = str(uuid.uuid4())
            client.put_item(TableName=table, Item={"pk": {"S": f"T#{tenant}"}, "sk": {"S": f"ITEM#{new_id}"},
                                                   "id": {"S": new_id}, "name": {"S": BODY["name"]}})

        return put

    def get() -> None:
        item = client.get_item(TableName=table, Key={"pk": {"S": f"T#{tenant}"}, "sk": {"S": f"ITEM#{item_id}"}})["Item"]
        assert item

    return get


def ours(action: str, tenant: str, item_id: str) -> Callable[[], None]:
    sys.path.insert(0, os.getcwd())
    import app
    from bench.events import api_event, lambda_context

    if action in ("auth", "auth_token"):
        credential = os.environ["BENCH_TOKEN" if action == "auth_token" else "BENCH_KEY"]
        event = {"type": "TOKEN", "authorizationToken": f"Bearer {credential}",
                 "methodArn": f"arn:aws:execute-api:us-east-1:123456789012:bench/api/GET/items/{item_id}"}

        def authorize() -> None:
            answer = app.bearer_authorizer(event, lambda_context())
            assert answer["principalId"] == tenant, answer

        return authorize
    if action == "post":
        def post() -> None:
            response = app.app(api_event("POST", "/items", "/items", tenant, body=json.dumps(BODY)), lambda_context())
            assert response["statusCode"] == 201, response

        return post

    def get() -> None:
        response = app.app(api_event("GET", "/items/{item_id}", f"/items/{item_id}", tenant, {"item_id": item_id}),
                           lambda_context())
        assert response["statusCode"] == 200, response

    return get


def peer(name: str) -> Callable[[str, str, str], Callable[[], None]]:
    def load(action: str, tenant: str, item_id: str) -> Callable[[], None]:
        sys.path.insert(0, os.getcwd())
        if name == "seed":
            from bench.peers.seed_chalice import app as handler
        elif name == "powertools":
            from bench.peers.powertools_app import lambda_handler as handler
        else:
            from bench.peers.fastapi_app import handler
        from bench.events import api_event, lambda_context

        if action == "post":
            expected, make = 201, lambda: api_event("POST", "/items", "/items", tenant, body=json.dumps(BODY))
        else:
            expected, make = 200, lambda: api_event("GET", "/items/{item_id}", f"/items/{item_id}", tenant,
                                                    {"item_id": item_id})

        def call() -> None:
            response: dict[str, Any] = handler(make(), lambda_context())
            assert response["statusCode"] == expected, response
            assert action == "post" or json.loads(response["body"])["id"] == item_id, response

        return call

    return load


SUBJECTS: dict[str, Callable[[str, str, str], Callable[[], None]]] = {
    "floor": floor, "ours": ours, "seed": peer("seed"), "powertools": peer("powertools"), "fastapi": peer("fastapi"),
}


def main() -> None:
    subject, action = sys.argv[1], sys.argv[2]
    tenant, item_id = os.environ["BENCH_TENANT"], os.environ["BENCH_ITEM"]
    call = SUBJECTS[subject]("get" if action == "warm" else action, tenant, item_id)
    call()
    cold_ms, cpu_ms = (time.perf_counter() - STARTED) * 1000, (time.process_time() - CPU_STARTED) * 1000
    result: dict[str, Any] = {"ms": cold_ms, "cpu_ms": cpu_ms, "modules": len(sys.modules)}
    if action == "warm":
        result.update(warm(call, tenant, item_id, int(os.environ.get("BENCH_WARM", "100"))))
    sys.stdout.flush()
    print("\n" + json.dumps(result))


def warm(call: Callable[[], None], tenant: str, item_id: str, iterations: int) -> dict[str, float]:
    import statistics

    import boto3

    client = boto3.client("dynamodb")
    key = {"pk": {"S": f"T#{tenant}"}, "sk": {"S": f"ITEM#{item_id}"}}
    table = os.environ["TABLE_NAME"]
    for _ in range(10):
        call()
        client.get_item(TableName=table, Key=key)
    app_times, raw_times = [], []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        app_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get_item(TableName=table, Key=key)
        raw_times.append(time.perf_counter() - started)
    return {"app_us": statistics.median(app_times) * 1e6, "raw_us": statistics.median(raw_times) * 1e6}


main()
