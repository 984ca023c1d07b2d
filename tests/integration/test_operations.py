"""Through the local stack: a request's EMF line in the function's log, and the Operations data it feeds."""

from __future__ import annotations

import json
import time

import requests

from chalicelib.util import metrics


def emf_records(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith('{"_aws"')]


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_request_writes_an_emf_line_with_the_documented_metrics(local_stack):
    session = local_stack.session("alpha")
    missing = session.get(f"{local_stack.api_url}/items/operations-missing-item", timeout=30)
    assert missing.status_code == 404

    def line_of_the_request():
        return [r for r in emf_records(local_stack.log())
                if r.get("Route") == "/items/{item_id}" and r.get("Method") == "GET" and "Requests" in r]

    records = wait_for(line_of_the_request)
    assert records, local_stack.log()[-3000:]
    record = records[-1]
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ItemsService/local"
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == metrics.API.units
    assert directive["Dimensions"] == [list(d) for d in metrics.API.dimension_sets]
    assert record["service"] == metrics.SERVICE
    problems = [r for r in emf_records(local_stack.log()) if r.get("ProblemType") == "not-found"]
    assert problems
    authorizer = [r for r in emf_records(local_stack.log()) if "AuthorizerAllow" in r]
    assert authorizer  # the authorizer function writes its own lines
    assert local_stack.keys["alpha"] not in "".join(json.dumps(r) for r in emf_records(local_stack.log()))


def test_the_operations_data_counts_the_traffic_and_samples_the_queues(local_stack):
    url = f"{local_stack.ui_url}operations.json"
    before = requests.get(url, timeout=10).json()
    session = local_stack.session("alpha")
    for _ in range(3):
        assert session.get(f"{local_stack.api_url}/items", timeout=30).status_code == 200

    def counted():
        data = requests.get(url, timeout=10).json()
        # Only the seconds since ``before``: older traffic leaves the plotted window meanwhile.
        since = sum(p["count"] for p in data["requests_per_second"] if p["at"] >= before["now"])
        return data if since >= 3 and data["queue_depths"] else None

    data = wait_for(counted)
    assert data, requests.get(url, timeout=10).json()
    routes = {r["route"]: r for r in data["latency_by_route"]}
    assert routes["GET /items"]["count"] >= 3
    assert 0 < routes["GET /items"]["p50"] <= routes["GET /items"]["p95"] <= routes["GET /items"]["p99"]
    assert set(data["queue_depths"][-1]) == {"at", "work", "dead-letter", "events dead-letter"}
    assert data["emf_lines"] > before["emf_lines"]
    # The data is the local stack's only: the API itself has no such route.
    assert session.get(f"{local_stack.api_url}/operations.json", timeout=30).status_code in (403, 404)


def test_failed_storage_events_end_in_the_stages_events_dead_letter_queue(local_stack):
    """As the deploy step wires it in AWS: the template's events DLQ, the one the alarm watches."""
    import re

    import boto3

    endpoint = re.search(r"emulator\s+(http://\S+)", local_stack.log())
    assert endpoint
    sqs = boto3.client("sqs", endpoint_url=endpoint.group(1), region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    from local.dispatcher import NOTIFICATION_QUEUE

    url = sqs.get_queue_url(QueueName=NOTIFICATION_QUEUE)["QueueUrl"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":items-local-events-dlq")
