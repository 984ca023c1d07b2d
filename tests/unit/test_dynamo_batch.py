"""Batch writes and reads retry what DynamoDB leaves unprocessed, and fail loudly when it persists."""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from chalicelib.store import transactions as dynamo_batch

T = os.environ["TABLE_NAME"]  # the stage table: the IAM audit checks every call against its policy


def put(n):
    return dynamo_batch.put({"pk": {"S": "p"}, "sk": {"S": f"s{n}"}})


def test_unprocessed_items_are_sent_again_until_done(stubbed):
    requests = [put(n) for n in range(3)]
    stubbed.add_response(
        "batch_write_item", {"UnprocessedItems": {T: requests[1:]}}, {"RequestItems": {T: requests}}
    )
    stubbed.add_response(
        "batch_write_item", {"UnprocessedItems": {T: requests[2:]}}, {"RequestItems": {T: requests[1:]}}
    )
    stubbed.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {T: requests[2:]}})
    dynamo_batch.write(T, requests)


def test_more_than_25_writes_go_in_several_batches(stubbed):
    requests = [put(n) for n in range(30)]
    stubbed.add_response("batch_write_item", {}, {"RequestItems": {T: requests[:25]}})
    stubbed.add_response("batch_write_item", {}, {"RequestItems": {T: requests[25:]}})
    dynamo_batch.write(T, requests)


def test_persistently_unprocessed_items_raise(stubbed):
    requests = [put(0)]
    for _ in range(dynamo_batch.ATTEMPTS):
        stubbed.add_response(
            "batch_write_item", {"UnprocessedItems": {T: requests}}, {"RequestItems": {T: requests}}
        )
    with pytest.raises(dynamo_batch.UnprocessedError, match="1 writes still unprocessed"):
        dynamo_batch.write(T, requests)


def test_throttling_that_outlasts_the_client_retries_is_raised(stubbed):
    stubbed.add_client_error("batch_write_item", "ProvisionedThroughputExceededException")
    with pytest.raises(ClientError):
        dynamo_batch.write(T, [put(0)])


def test_unprocessed_keys_are_read_again(stubbed):
    keys = [{"pk": {"S": "p"}, "sk": {"S": f"s{n}"}} for n in range(2)]
    stubbed.add_response(
        "batch_get_item",
        {"Responses": {T: [keys[0]]}, "UnprocessedKeys": {T: {"Keys": keys[1:], "ConsistentRead": True}}},
        {"RequestItems": {T: {"Keys": keys, "ConsistentRead": True}}},
    )
    stubbed.add_response(
        "batch_get_item",
        {"Responses": {T: [keys[1]]}},
        {"RequestItems": {T: {"Keys": keys[1:], "ConsistentRead": True}}},
    )
    assert dynamo_batch.get(T, keys) == keys


CHECK = [{"Put": {"TableName": T, "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}}, "ConditionExpression": "attribute_not_exists(pk)"}}]


def test_transactions_are_retried_on_conflicts_only(stubbed):
    stubbed.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        response_meta=None,
        modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}]},
    )
    stubbed.add_response("transact_write_items", {})
    dynamo_batch.transact(CHECK)


def test_a_failed_condition_is_not_retried(stubbed):
    stubbed.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        modeled_fields={"CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]},
    )
    with pytest.raises(ClientError):
        dynamo_batch.transact(CHECK)


def test_endless_conflicts_end_as_service_unavailable(stubbed):
    from chalicelib.problems import Problem

    for _ in range(dynamo_batch.TRANSACT_ATTEMPTS):
        stubbed.add_client_error(
            "transact_write_items",
            "TransactionCanceledException",
            modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}]},
        )
    with pytest.raises(Problem) as raised:
        dynamo_batch.transact(CHECK)
    assert raised.value.status == 503
