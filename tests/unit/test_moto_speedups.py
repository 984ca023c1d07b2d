"""The unit session's transaction speed-up (tests/moto_speedups.py): transactions still apply whole or not at all."""

from __future__ import annotations

import boto3
import pytest

NAME = "speedup-transactions"


def test_transactions_apply_whole_or_roll_back_exactly(aws_mock):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=NAME, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )

    def item(sk):
        return client.get_item(TableName=NAME, Key={"pk": {"S": "tx"}, "sk": {"S": sk}}).get("Item")

    client.put_item(TableName=NAME, Item={"pk": {"S": "tx"}, "sk": {"S": "ITEM#kept"}, "v": {"N": "1"}})
    client.put_item(TableName=NAME, Item={"pk": {"S": "tx"}, "sk": {"S": "ITEM#gone"}, "v": {"N": "1"}})
    cancelled = [
        {"Put": {"TableName": NAME, "Item": {"pk": {"S": "tx"}, "sk": {"S": "ITEM#new"}}}},
        {"Delete": {"TableName": NAME, "Key": {"pk": {"S": "tx"}, "sk": {"S": "ITEM#gone"}}}},
        {"Update": {"TableName": NAME, "Key": {"pk": {"S": "tx"}, "sk": {"S": "ITEM#kept"}},
                    "UpdateExpression": "SET v = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        {"Put": {"TableName": NAME, "Item": {"pk": {"S": "tx"}, "sk": {"S": "ITEM#kept2"}},
                 "ConditionExpression": "attribute_exists(pk)"}},
    ]
    with pytest.raises(client.exceptions.TransactionCanceledException) as raised:
        client.transact_write_items(TransactItems=cancelled)
    codes = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert codes == ["None", "None", "None", "ConditionalCheckFailed"]
    assert item("ITEM#new") is None
    assert item("ITEM#gone")["v"] == {"N": "1"}
    assert item("ITEM#kept")["v"] == {"N": "1"}

    client.transact_write_items(TransactItems=cancelled[:3])
    assert item("ITEM#new") is not None and item("ITEM#gone") is None and item("ITEM#kept")["v"] == {"N": "2"}
