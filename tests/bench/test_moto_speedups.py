"""The benchmark's speed-up on moto (bench/moto_speedups.py) answers exactly as moto itself does."""

from __future__ import annotations

import os
import random
from unittest import mock

import boto3
import pytest

from bench import moto_speedups

PREFIXES = ["ATT#", "IMPORT#", "ITEM#", "ITEM#a", "Z"]
NAME = "speedup-equivalence"


@pytest.fixture
def table():
    import moto
    from moto import mock_aws

    if moto.__version__ != moto_speedups.CHECKED_MOTO_VERSION:
        pytest.skip(f"the speed-ups are checked against moto {moto_speedups.CHECKED_MOTO_VERSION} only")
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with mock.patch.dict(os.environ, credentials), mock_aws(), moto_speedups.installed() as index:
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=NAME,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "g", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "gsi",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        yield client, dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(NAME), index


def test_queries_match_moto_for_random_data_and_conditions(table):
    from moto.dynamodb.models.dynamo_type import DynamoType

    client, moto_table, index = table
    rng = random.Random(20261124)
    keys: set[str] = set()
    for round_ in range(40):
        # Mutate: inserts and deletes through the API, so the index follows moto's writes.
        for _ in range(rng.randint(1, 30)):
            sk = rng.choice(PREFIXES) + "".join(rng.choice("abc01") for _ in range(rng.randint(0, 3)))
            if sk in keys and rng.random() < 0.4:
                client.delete_item(TableName=NAME, Key={"pk": {"S": "p"}, "sk": {"S": sk}})
                keys.discard(sk)
            else:
                client.put_item(TableName=NAME, Item={"pk": {"S": "p"}, "sk": {"S": sk}, "n": {"N": str(round_)}})
                keys.add(sk)
        for _ in range(25):
            comparison, values = rng.choice([
                (None, []), ("BEGINS_WITH", [rng.choice(PREFIXES)]), ("EQ", [rng.choice(sorted(keys) or ["x"])]),
                ("LT", ["ITEM#b"]), ("LE", ["ITEM#a"]), ("GT", ["ITEM#"]), ("GE", ["IMPORT#a"]),
                ("BETWEEN", ["ATT#", "ITEM#b"]),
            ])
            limit = rng.choice([None, 1, 2, 5, 21])
            forward = rng.random() < 0.5
            start = {"pk": {"S": "p"}, "sk": {"S": rng.choice(sorted(keys))}} if keys and rng.random() < 0.5 else None
            args = (DynamoType({"S": "p"}), comparison, [DynamoType({"S": v}) for v in values], limit, start, forward, None)
            got = moto_table.query(*args)
            expected = index.unpatched_query(moto_table, *args)
            assert [i.range_key.value for i in got[0]] == [i.range_key.value for i in expected[0]], (comparison, values)
            assert got[1:] == expected[1:]


def test_index_queries_match_moto_through_puts_updates_and_deletes(table):
    """An index partitioned by the table's partition key (as name-index and updated-index are)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    client, moto_table, index = table
    rng = random.Random(20261129)
    keys: set[str] = set()
    values = ["a", "ab", "abc", "b", "ba", "c", "a\x00x", "a\x00y"]
    for _round in range(30):
        for _ in range(rng.randint(1, 20)):
            sk = f"ITEM#{rng.randint(0, 40):02d}"
            action = rng.random()
            key = {"pk": {"S": "p"}, "sk": {"S": sk}}
            if sk in keys and action < 0.3:
                client.delete_item(TableName=NAME, Key=key)
                keys.discard(sk)
            elif sk in keys and action < 0.6:
                client.update_item(TableName=NAME, Key=key, UpdateExpression="SET g = :g",
                                   ExpressionAttributeValues={":g": {"S": rng.choice(values)}})
            else:
                item = {**key, **({"g": {"S": rng.choice(values)}} if rng.random() < 0.8 else {})}
                client.put_item(TableName=NAME, Item=item)
                keys.add(sk)
        stored = {i["sk"]["S"]: i for i in client.scan(TableName=NAME)["Items"] if "g" in i and i["pk"]["S"] == "p"}
        for _ in range(20):
            comparison, bounds = rng.choice([(None, []), ("BEGINS_WITH", [rng.choice(values)]), ("GT", ["ab"])])
            limit = rng.choice([1, 2, 5, 21])
            forward = rng.random() < 0.5
            start = None
            if stored and rng.random() < 0.5:
                at = stored[rng.choice(sorted(stored))]
                start = {"pk": at["pk"], "sk": at["sk"], "g": at["g"]}
            args = (DynamoType({"S": "p"}), comparison, [DynamoType({"S": v}) for v in bounds], limit, start, forward,
                    None, "gsi")
            conditions = {"hash_key_conditions": [("pk", DynamoType({"S": "p"}))]}
            got = moto_table.query(*args, **conditions)
            expected = index.unpatched_query(moto_table, *args, **conditions)
            assert [i.range_key.value for i in got[0]] == [i.range_key.value for i in expected[0]], (comparison, bounds)
            assert got[1:] == expected[1:]


def test_paging_through_the_api_sees_every_key_once(table):
    client, _, _ = table
    for n in range(57):
        client.put_item(TableName=NAME, Item={"pk": {"S": "paging"}, "sk": {"S": f"ITEM#{n:03d}"}})
    client.put_item(TableName=NAME, Item={"pk": {"S": "paging"}, "sk": {"S": "ATT#x"}})
    seen, kwargs = [], {}
    while True:
        page = client.query(TableName=NAME, Limit=10, KeyConditionExpression="pk = :p AND begins_with(sk, :i)",
                            ExpressionAttributeValues={":p": {"S": "paging"}, ":i": {"S": "ITEM#"}}, **kwargs)
        seen += [item["sk"]["S"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert seen == [f"ITEM#{n:03d}" for n in range(57)]


def test_uninstall_puts_moto_back():
    import moto
    from moto.dynamodb.models.table import Table

    if moto.__version__ != moto_speedups.CHECKED_MOTO_VERSION:
        pytest.skip(f"the speed-ups are checked against moto {moto_speedups.CHECKED_MOTO_VERSION} only")
    def current():
        return (Table.query, Table.put_item, Table.delete_item)

    before = current()
    with moto_speedups.installed():
        assert all(new is not old for new, old in zip(current(), before, strict=True))
        with moto_speedups.installed():  # nested: the outer block's stay
            pass
        assert all(new is not old for new, old in zip(current(), before, strict=True))
    assert current() == before
