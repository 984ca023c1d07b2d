"""The sparse ``due-index``: the keys of records whose cleanup is due, shard by shard.

A record that will need cleaning carries ``due_pk`` (one of ``layout.DUE_SHARDS`` shards) and
``due_at``; the index holds only those, so reading what is due costs O(due), never a ``Scan``.
It projects keys only and is eventually consistent: whoever acts on a key re-reads or conditions
on the base record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.store import aws
from chalicelib.store.codec import to_attr
from chalicelib.store.layout import DUE_INDEX, all_due_pks

PAGE_SIZE = 100


def shards() -> list[str]:
    return all_due_pks()


def due_keys(table: str, shard: str, now: str) -> Iterator[tuple[str, str, str]]:
    """``(pk, sk, due_at)`` of each record of ``shard`` due at ``now``, oldest first, a page of
    ``PAGE_SIZE`` at a time."""
    kwargs: dict[str, Any] = {}
    while True:
        response = aws.dynamodb().query(
            TableName=table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_pk = :shard AND due_at <= :now",
            ExpressionAttributeValues={":shard": to_attr(shard), ":now": to_attr(now)},
            Limit=PAGE_SIZE,
            **kwargs,
        )
        for key in response.get("Items", []):
            yield str(key["pk"]["S"]), str(key["sk"]["S"]), str(key["due_at"]["S"])
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
