"""The local emulator: moto's server unmodified, with DynamoDB requests applied one at a time."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from local.emulator import AtomicDynamoDB, Emulator
from tests.localstack import ROOT, free_port


def _concurrency(target: str | None, requests: int = 4, wait: float = 5.0) -> int:
    """Most requests ``AtomicDynamoDB`` let into the wrapped app at once."""
    running, most, guard = 0, 0, threading.Lock()
    gate = threading.Barrier(requests, timeout=wait)

    def app(environ, start_response):
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()  # only passes when every request is inside at once
        with guard:
            running -= 1
        start_response("200 OK", [])
        return [b"{}"]

    wrapped = AtomicDynamoDB(app)
    environ = {"HTTP_X_AMZ_TARGET": target} if target else {}
    with ThreadPoolExecutor(requests) as pool:
        bodies = list(pool.map(lambda _: b"".join(wrapped(dict(environ), lambda *a: None)), range(requests)))
    assert bodies == [b"{}"] * requests
    return most


def test_dynamodb_requests_run_one_at_a_time():
    assert _concurrency("DynamoDB_20120810.UpdateItem", requests=3, wait=0.3) == 1


def test_other_requests_stay_concurrent():
    assert _concurrency(None) == 4  # S3 and SQS (long polls) never wait for each other
    assert _concurrency("AmazonSQS.ReceiveMessage") == 4


def test_the_response_body_is_complete_before_the_next_request_starts():
    order: list[str] = []

    def app(environ, start_response):
        name = environ["name"]
        start_response("200 OK", [])

        def body():
            order.append(f"{name} starts")
            time.sleep(0.05)
            yield name.encode()
            order.append(f"{name} ends")

        return body()

    wrapped = AtomicDynamoDB(app)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: b"".join(wrapped({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem", "name": n},
                                                 lambda *a: None)), ["a", "b"]))
    assert order in (["a starts", "a ends", "b starts", "b ends"], ["b starts", "b ends", "a starts", "a ends"])


@pytest.fixture
def emulator():
    running = Emulator("127.0.0.1", free_port())
    running.start()
    yield running
    running.stop()


def test_concurrent_conditional_writes_through_the_emulator_have_one_winner(emulator):
    client = boto3.client("dynamodb", endpoint_url=emulator.endpoint, region_name="us-east-1",
                          aws_access_key_id="emulator", aws_secret_access_key="emulator",  # noqa: S106
                          config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 1}))
    client.create_table(TableName="atomic", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    writers = 16
    # The server's threads run in this process: switching threads often makes moto's window
    # between checking a condition and writing likely to be hit (without the lock, it is).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(5):
            key = {"pk": {"S": f"x{round_}"}}
            client.put_item(TableName="atomic", Item={**key, "version": {"N": "1"}})
            start = threading.Barrier(writers)

            def write(n: int, key: dict[str, dict[str, str]] = key, start: threading.Barrier = start) -> str:
                start.wait()
                try:
                    client.update_item(TableName="atomic", Key=key, UpdateExpression="SET version = :next, w = :w",
                                       ConditionExpression="version = :v",
                                       ExpressionAttributeValues={":v": {"N": "1"}, ":next": {"N": "2"},
                                                                  ":w": {"N": str(n)}})
                    return "won"
                except client.exceptions.ConditionalCheckFailedException:
                    return "lost"

            with ThreadPoolExecutor(writers) as pool:
                outcomes = list(pool.map(write, range(writers)))
            assert outcomes.count("won") == 1, (round_, outcomes)
    finally:
        sys.setswitchinterval(interval)


def _client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="emulator",
                        aws_secret_access_key="emulator",  # noqa: S106
                        config=Config(retries={"mode": "standard", "max_attempts": 1}))


def _transactions(client, name: str) -> list:
    """Each transaction's outcome and the table after it: what a client can observe."""
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )

    def key(sk):
        return {"pk": {"S": "tx"}, "sk": {"S": sk}}

    client.put_item(TableName=name, Item={**key("kept"), "v": {"N": "1"}})
    client.put_item(TableName=name, Item={**key("gone"), "v": {"N": "1"}})
    new = {"Put": {"TableName": name, "Item": {**key("new"), "v": {"N": "7"}}, "ConditionExpression": "attribute_not_exists(pk)"}}
    delete = {"Delete": {"TableName": name, "Key": key("gone")}}
    update = {"Update": {"TableName": name, "Key": key("kept"), "UpdateExpression": "SET v = v + :one",
                         "ConditionExpression": "v = :v", "ExpressionAttributeValues": {":one": {"N": "1"}, ":v": {"N": "1"}},
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
    failing = {"Put": {"TableName": name, "Item": key("other"), "ConditionExpression": "attribute_exists(pk)"}}
    check = {"ConditionCheck": {"TableName": name, "Key": key("kept"), "ConditionExpression": "attribute_exists(pk)"}}
    outcomes = []
    for actions in ([new, delete, update, failing], [new, delete, update], [new, update], [check, failing],
                    [update, {"Delete": {"TableName": name, "Key": key("kept")}}],
                    [{"Put": {"TableName": "no-such-table", "Item": key("x")}}]):
        try:
            client.transact_write_items(TransactItems=actions)
            outcome: object = "applied"
        except client.exceptions.TransactionCanceledException as exc:
            outcome = ("cancelled", exc.response["CancellationReasons"])
        except client.exceptions.ClientError as exc:
            outcome = ("refused", exc.response["Error"]["Code"])
        items = client.scan(TableName=name, ConsistentRead=True)["Items"]
        outcomes.append((outcome, sorted(items, key=lambda item: item["sk"]["S"])))
    return outcomes


def test_transactions_answer_as_moto_itself_does(emulator):
    """Applied or cancelled whole, with moto's reasons, as moto's own TransactWriteItems answers."""
    from moto.server import ThreadedMotoServer

    got = _transactions(_client(emulator.endpoint), "transactions")
    plain = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    plain.start()
    try:
        host, port = plain.get_host_and_port()
        expected = _transactions(_client(f"http://{host}:{port}"), "transactions-plain")
    finally:
        plain.stop()
    assert got == expected
    assert got[0][0][0] == "cancelled" and got[1][0] == "applied"  # the cases above do what they say


def test_an_invalid_action_refuses_the_whole_transaction(emulator):
    # DynamoDB refuses an expression naming an undefined value with ValidationException
    # (moto's own TransactWriteItems answers a cancellation with a TypeError reason instead).
    client = _client(emulator.endpoint)
    client.create_table(TableName="invalid", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": "invalid", "Item": {"pk": {"S": "first"}}}},
            {"Update": {"TableName": "invalid", "Key": {"pk": {"S": "second"}}, "UpdateExpression": "SET v = :nope"}},
        ])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert client.scan(TableName="invalid")["Items"] == []


def test_a_transaction_costs_its_items_not_the_table(emulator):
    client = _client(emulator.endpoint)
    client.create_table(TableName="large", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    for start in range(0, 3000, 25):
        client.batch_write_item(RequestItems={"large": [
            {"PutRequest": {"Item": {"pk": {"S": f"p{n}"}, "data": {"S": "x" * 100}}}} for n in range(start, start + 25)]})
    actions = [{"Put": {"TableName": "large", "Item": {"pk": {"S": f"new{n}"}}, "ConditionExpression": "attribute_not_exists(pk)"}}
               for n in range(50)]
    started = time.monotonic()
    client.transact_write_items(TransactItems=actions)
    assert time.monotonic() - started < 2  # moto's own: about 5 s here (a copy of the table per action)


CHECK_UNPATCHED = """
import copy
from local.emulator import Emulator
from tests.localstack import free_port
emulator = Emulator("127.0.0.1", free_port())
emulator.start()
from moto.dynamodb import models
from moto.dynamodb.models.table import Table
replaced = [f"{owner.__name__}.{name}" for owner, name in
            [(Table, "query"), (Table, "put_item"), (Table, "delete_item"), (Table, "all_items"),
             (models.DynamoDBBackend, "transact_write_items")]
            if not getattr(owner, name).__module__.startswith("moto.")]
if models.copy is not copy:
    replaced.append("moto.dynamodb.models.copy")
emulator.stop()
print(replaced)
"""


def test_the_emulator_leaves_moto_unpatched():
    # In a fresh process: the unit tests' own harness (tests/moto_shims.py) shims moto in this one.
    done = subprocess.run([sys.executable, "-c", CHECK_UNPATCHED], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
