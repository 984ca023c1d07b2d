"""Where moto answers differently from DynamoDB in a way a test must see, the test harness makes it
answer as DynamoDB does. Each shim cites the AWS documentation it follows.

- ``Query`` with ``Limit``: the API reference (Query, request parameter ``Limit``) says "If
  DynamoDB processes the number of items up to the limit while processing the results, it stops
  the operation and returns the matching values up to that point, and a key in
  LastEvaluatedKey to apply in a subsequent operation". So a query whose ``Limit`` is reached on
  the partition's last item still returns ``LastEvaluatedKey``, and the next page is empty. moto
  returns it only when another item follows, which hides a listing that reads ``limit`` items
  instead of ``limit + 1``: on AWS such a listing ends with an empty page carrying a cursor.
- Expression size: the Developer Guide ("Constraints in Amazon DynamoDB", "Expression
  parameters") says "The maximum length of any expression string is 4 KB". moto accepts any
  length (and its parser recurses until it fails on a few hundred clauses), so a write that AWS
  would refuse could pass here.

One shim changes only how long moto takes, not what it answers:

- ``Query`` on the table reads the partition it names, and ``Query`` on an index does not sort
  the whole table first. moto sorts every item of the table before picking the matching ones, so
  with one table shared by a whole test session each query costs more than the one before; the
  answer is the same either way (an index query's matches are sorted by all their keys after).
"""

from __future__ import annotations

from typing import Any

_installed: set[str] = set()


def query_limit_like_dynamodb() -> None:
    """Install the ``Limit`` shim on moto's ``Table.query`` (once per process)."""
    if "query-limit" in _installed:
        return
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
              exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
              index_name: Any = None, consistent_read: bool = False, filter_expression: Any = None,
              **kwargs: Any) -> Any:
        results, scanned, last_key = original(
            self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
            projection_expressions, index_name, consistent_read, filter_expression, **kwargs,
        )
        if last_key is None and limit and scanned == limit:
            # The limit was reached exactly on the last matching item: find that item (before any
            # filter or projection) and hand back its key, as DynamoDB does.
            evaluated, _, _ = original(
                self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                None, index_name, consistent_read, None, **kwargs,
            )
            if len(evaluated) == limit:
                last_key = self._get_last_evaluated_key(evaluated[-1], index_name)
        return results, scanned, last_key

    Table.query = query
    _installed.add("query-limit")


MAX_EXPRESSION_BYTES = 4096
_EXPRESSIONS = ("UpdateExpression", "ConditionExpression", "KeyConditionExpression", "FilterExpression",
                "ProjectionExpression")


def expression_size_like_dynamodb() -> None:
    """Refuse expressions over 4 KB with DynamoDB's ``ValidationException`` (once per process)."""
    if "expression-size" in _installed:
        return
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    def checked(original: Any) -> Any:
        def handler(self: Any) -> Any:
            for name in _EXPRESSIONS:
                text = self.body.get(name)
                if isinstance(text, str) and len(text.encode("utf-8")) > MAX_EXPRESSION_BYTES:
                    raise MockValidationException(
                        f"Invalid {name}: Expression size has exceeded the maximum allowed size; "
                        f"expression size: {len(text.encode('utf-8'))}"
                    )
            return original(self)

        return handler

    for operation in ("update_item", "put_item", "delete_item", "query"):
        setattr(DynamoHandler, operation, checked(getattr(DynamoHandler, operation)))
    _installed.add("expression-size")


def query_reads_one_partition() -> None:
    """Give moto's ``Table.query`` only the queried partition, or for an index query the table's
    items unsorted (once per process)."""
    if "query-partition" in _installed:
        return
    from moto.dynamodb.models.table import Table

    original = Table.query
    index_position = 6  # index_name, after range_comparison ... projection_expressions

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[index_position] if len(args) > index_position else kwargs.get("index_name")
        if hash_key is None or not self.range_key_attr or "all_items" in vars(self):
            # items already chosen for this query (local/emulator.py), or a table without sort key: moto's own way
            return original(self, hash_key, *args, **kwargs)
        if index_name:
            items = [item for partition in self.items.values() for item in partition.values()]
        else:
            items = list(self.items[hash_key].values()) if hash_key in self.items else []
        return original(_TableView(self, items), hash_key, *args, **kwargs)

    Table.query = query
    _installed.add("query-partition")


class _TableView:
    """A table as moto's query code sees it, except for the items its ``all_items`` gives. Nothing
    of the table is copied or changed, so queries from several threads stay independent."""

    def __init__(self, table: Any, items: list[Any]) -> None:
        self._table = table
        self._items = items

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        return self._items
