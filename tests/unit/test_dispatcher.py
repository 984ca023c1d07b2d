"""The local event dispatcher against the AWS mock: notifications, Lambda-like retries, wiring."""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import boto3
import pytest

from local import dispatcher
from local.dispatcher import Dispatcher, Function, LambdaContext, StorageEventRelay
from local.package import ROOT, Package, build


@pytest.fixture
def scratch(aws_mock):
    """A bucket notifying a queue (with a dead-letter queue), like the relay sets up."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = "relay-test-bucket"
    s3.create_bucket(Bucket=bucket)
    dlq = sqs.create_queue(QueueName="relay-test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="relay-test",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "fn",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}},
                }
            ]
        },
    )
    yield s3, sqs, bucket, queue, dlq
    for url in (queue, dlq):
        sqs.delete_queue(QueueUrl=url)


def test_relay_delivers_one_record_events_with_encoded_keys_and_skips_the_test_event(scratch):
    s3, sqs, bucket, queue, _ = scratch
    received = []
    relay = StorageEventRelay(sqs, queue, {"fn": Function("fn", lambda e, c: received.append(e), 5.0)}, retry_delay=0)
    key = "in/a b+c/é%2F.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")  # filtered out by the prefix
    while relay.poll_once():
        pass
    assert len(received) == 1
    record = received[0]["Records"][0]
    assert record["s3"]["object"]["key"] == urllib.parse.quote_plus(key)
    assert urllib.parse.unquote_plus(record["s3"]["object"]["key"]) == key


def test_relay_retries_a_failing_handler_twice_then_dead_letters(scratch):
    s3, sqs, bucket, queue, dlq = scratch
    calls = []

    def failing(event, context):
        calls.append(event)
        raise RuntimeError("handler failed")

    relay = StorageEventRelay(sqs, queue, {"fn": Function("fn", failing, 5.0)}, retry_delay=0)
    s3.put_object(Bucket=bucket, Key="in/x", Body=b"x")
    for _ in range(6):
        relay.poll_once()
    assert len(calls) == 3
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead[0]["Body"])["Records"][0]["s3"]["object"]["key"] == "in%2Fx"


def test_relay_drops_what_is_not_an_event(scratch):
    _, sqs, _, queue, _ = scratch
    relay = StorageEventRelay(sqs, queue, {}, retry_delay=0)
    for body in ("not json", json.dumps(["x"]), json.dumps({"Records": [{"s3": {"configurationId": "nobody"}}]})):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    while relay.poll_once():
        pass
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_context_counts_down_from_the_function_timeout():
    context = LambdaContext("fn", 2.0)
    assert 1900 < context.get_remaining_time_in_millis() <= 2000
    assert context.invoked_function_arn.endswith(":function:items-local-fn")


def packaged(**stage_environment: str) -> Package:
    """The package ``chalice package`` builds for the local stage, with this test's resources."""
    queue_url = os.environ["QUEUE_URL"]
    environment = {
        "STAGE": "local",
        "TABLE_NAME": os.environ["TABLE_NAME"],
        "BUCKET_NAME": os.environ["BUCKET_NAME"],
        "QUEUE_NAME": queue_url.rsplit("/", 1)[-1],
        **stage_environment,
    }
    return build(environment, {"QUEUE_URL": queue_url}, ROOT / ".local" / "package").package


def test_dispatcher_wiring_is_the_packages(app_module):
    """Events, prefixes, batch size, response types and the rate: what ``chalice package`` says."""
    package = packaged(CLEANUP_RATE_MINUTES="7")
    assert [(s.function, s.rate_seconds) for s in package.schedules] == [("run_cleanup", 420)]
    assert [(m.function, m.batch_size, m.report_batch_item_failures) for m in package.mappings] == [
        ("on_work_message", 10, True)
    ]
    assert {(n.bucket, n.function, n.prefix, n.events) for n in package.notifications} == {
        (os.environ["BUCKET_NAME"], "on_attachment_uploaded", "attachments/", ("s3:ObjectCreated:*",)),
        (os.environ["BUCKET_NAME"], "on_import_uploaded", "imports/", ("s3:ObjectCreated:*",)),
    }
    handlers = {key: getattr(app_module, spec.handler.rsplit(".", 1)[1]) for key, spec in package.functions.items()}
    wired = Dispatcher(package, handlers, boto3.client("sqs"), boto3.client("s3"))
    wired.setup()
    assert [(f.name, interval) for f, interval, _ in wired.schedules] == [("run_cleanup", 420)]
    assert [(p.batch_size, p.report_batch_item_failures) for p in wired.pollers] == [(10, True)]
    assert wired.relay is not None
    configuration = boto3.client("s3").get_bucket_notification_configuration(Bucket=os.environ["BUCKET_NAME"])
    boto3.client("s3").put_bucket_notification_configuration(Bucket=os.environ["BUCKET_NAME"],
                                                             NotificationConfiguration={})
    prefixes = {c["Id"]: c["Filter"]["Key"]["FilterRules"] for c in configuration["QueueConfigurations"]}
    assert prefixes == {
        "on_attachment_uploaded": [{"Name": "prefix", "Value": "attachments/"}],
        "on_import_uploaded": [{"Name": "prefix", "Value": "imports/"}],
    }


def test_dispatcher_wires_the_apps_handlers_and_delivers(app_module, tenant):
    s3 = boto3.client("s3")
    bucket = os.environ["BUCKET_NAME"]
    package = packaged()
    handlers = {key: getattr(app_module, spec.handler.rsplit(".", 1)[1]) for key, spec in package.functions.items()}
    wired = Dispatcher(package, handlers, boto3.client("sqs"), s3, cleanup_interval=0.2, retry_delay=0)
    try:
        wired.start()
        assert {f.name: f.timeout_seconds for f, _, _ in wired.schedules} == {"run_cleanup": 300.0}
        assert [(p.function.name, p.batch_size, p.function.timeout_seconds) for p in wired.pollers] == [
            ("on_work_message", 10, 60.0)
        ]
        assert wired.relay is not None
        assert {n: f.timeout_seconds for n, f in wired.relay.functions.items()} == {
            "on_attachment_uploaded": 15.0,
            "on_import_uploaded": 900.0,
        }
        item = json.loads(tenant.request("POST", "/items", {"name": "wired"}).body)
        attachment = json.loads(
            tenant.request(
                "POST",
                f"/items/{item['id']}/attachments",
                {"filename": "a.txt", "content_type": "text/plain", "size": 2},
            ).body
        )
        s3.put_object(Bucket=bucket, Key=attachment["upload"]["fields"]["key"], Body=b"hi", ContentType="text/plain")
        data = b'{"name": "queued"}\n'
        created = json.loads(tenant.request("POST", "/imports", {"format": "jsonl", "size": len(data)}).body)
        s3.put_object(
            Bucket=bucket, Key=created["upload"]["fields"]["key"], Body=data, ContentType="application/x-ndjson"
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = json.loads(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}").body)[
                "status"
            ]
            imported = json.loads(tenant.request("GET", f"/imports/{created['id']}").body)["status"]
            if (status, imported) == ("ready", "completed"):
                break
            time.sleep(0.1)
        assert (status, imported) == ("ready", "completed")
    finally:
        wired.stop()
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    assert not any(thread.is_alive() for thread in wired.threads)


def test_scheduled_event_is_what_chalice_expects(app_module):
    from chalice.app import CloudWatchEvent

    event = CloudWatchEvent(dispatcher.scheduled_event("items-local-run_cleanup"), None)
    assert event.detail_type == "Scheduled Event"
    assert event.resources == ["arn:aws:events:us-east-1:123456789012:rule/items-local-run_cleanup"]
