"""A speed-up on moto's DynamoDB internals, for the benchmark's process only (``bench/run.py``).

Neither the service, nor the local stack, nor the tests use it: they run moto unmodified
(``local/emulator.py``). The benchmark needs it because moto's ``Query`` costs grow with the size
of the whole table, which DynamoDB's do not, and the benchmark loads tables of 50,000 to 100,000
items to measure how the *service* scales: without it the list figures measure moto.

**Sorted-key queries** (replaces ``Table.query``, ``Table.put_item`` and ``Table.delete_item`` of
``moto.dynamodb.models.table``; checked against moto 5.2.5). moto's ``Table.query`` walks every
item of the table (``Table.all_items``), keeps the partition's, sorts them and then reads the
page: one list page costs O(table). DynamoDB finds a page in O(log n + page). A sorted index of
each partition's sort keys, kept in step with moto's writes, chooses the items moto's own query
code then evaluates, so results, ``Limit``, ``LastEvaluatedKey`` and filters are moto's.
Measured with moto 5.2.5 on a busy 2-core machine (``bench.run --only list_scaling``): with it,
the first page (limit 20) of a 50,000-item tenant took 1.08 times a 1,000-item tenant's; without
it, that page ran out of the request's time budget and answered 503, and the measure failed.

It replaces private methods, so it is checked against one moto version, ``CHECKED_MOTO_VERSION``;
with any other version ``install`` leaves moto alone and says so (the benchmark then reports
moto's own scaling, and records which in ``bench/results.json``). ``tests/bench/
test_moto_speedups.py`` checks on random data that the answers are moto's own.

**Index queries** (same replacement of ``Table.query``): moto answers a query on a global
secondary index by walking every item of the table and sorting the matches, O(table) again. For an
index partitioned by the table's own partition key (``name-index``, ``updated-index``), the sorted
(index key, sort key) pairs of each partition are kept per index, dropped whenever a write touches
the partition (``put_item``, ``delete_item``, and the backend's ``update_item``, which changes items
in place) and rebuilt at the next query; the chosen window is then evaluated by moto's own code.

(Transactions need nothing here: the emulator applies ``TransactWriteItems`` as single-item
writes at its HTTP layer, which costs what the items cost.)
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

CHECKED_MOTO_VERSION = "5.2.5"

_BOUNDED = {"EQ", "=", "LT", "<", "LE", "<=", "GT", ">", "GE", ">=", "BETWEEN", "BEGINS_WITH"}


class SortKeyIndex:
    """Sorted string sort keys per (table, partition), kept in step with moto's writes."""

    def __init__(self) -> None:
        self._keys: dict[tuple[int, Any], list[str]] = {}
        self.unpatched_query: Callable[..., Any] | None = None  # moto's own, for equivalence tests

    def keys(self, table: Any, hash_key: Any, partition: dict[Any, Any]) -> list[str]:
        slot = (id(table), hash_key)
        keys = self._keys.get(slot)
        if keys is None or len(keys) != len(partition):
            keys = sorted(key.value for key in partition)
            self._keys[slot] = keys
        return keys

    def added(self, table: Any, item: Any) -> None:
        keys = self._keys.get((id(table), item.hash_key))
        if keys is not None and item.range_key is not None:
            position = bisect.bisect_left(keys, item.range_key.value)
            if position == len(keys) or keys[position] != item.range_key.value:
                keys.insert(position, item.range_key.value)

    def removed(self, table: Any, hash_key: Any, range_key: Any) -> None:
        keys = self._keys.get((id(table), hash_key))
        if keys is not None and range_key is not None:
            position = bisect.bisect_left(keys, range_key.value)
            if position < len(keys) and keys[position] == range_key.value:
                del keys[position]


def _bounds(keys: list[str], comparison: str | None, values: list[str]) -> tuple[int, int]:
    """Index range of the keys that satisfy the key condition on the sort key."""
    left, right = bisect.bisect_left, bisect.bisect_right
    if comparison is None:
        return 0, len(keys)
    op = comparison.upper()
    if op in ("EQ", "="):
        return left(keys, values[0]), right(keys, values[0])
    if op in ("LT", "<"):
        return 0, left(keys, values[0])
    if op in ("LE", "<="):
        return 0, right(keys, values[0])
    if op in ("GT", ">"):
        return right(keys, values[0]), len(keys)
    if op in ("GE", ">="):
        return left(keys, values[0]), len(keys)
    if op == "BETWEEN":
        return left(keys, values[0]), right(keys, values[1])
    prefix = values[0]  # BEGINS_WITH
    if not prefix:
        return 0, len(keys)
    return left(keys, prefix), left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1))


class IndexKeyIndex:
    """Sorted (index key, table sort key) pairs per (table, index, partition), dropped on writes."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[int, str, Any], tuple[list[str], list[tuple[str, str]]]] = {}

    def pairs(self, table: Any, index: str, attribute: str, hash_key: Any, partition: dict[Any, Any]) -> tuple[
            list[str], list[tuple[str, str]]]:
        slot = (id(table), index, hash_key)
        found = self._pairs.get(slot)
        if found is None:
            pairs = sorted(
                (item.attrs[attribute].value, range_key.value)
                for range_key, item in partition.items()
                if attribute in item.attrs and item.attrs[attribute].type == "S"
            )
            found = ([value for value, _ in pairs], pairs)
            self._pairs[slot] = found
        return found

    def forget(self, table: Any, hash_key: Any) -> None:
        for slot in [slot for slot in self._pairs if slot[0] == id(table) and slot[2] == hash_key]:
            del self._pairs[slot]


# What install() replaced, to put back: (owner, attribute name, original value).
_replaced: list[tuple[Any, str, Any]] = []
_index: list[SortKeyIndex] = []


def _replace(owner: Any, name: str, value: Any) -> Any:
    original = getattr(owner, name)
    _replaced.append((owner, name, original))
    setattr(owner, name, value)
    return original


def _index_candidates(index_keys: IndexKeyIndex, self: Any, index_name: str, hash_conditions: list[tuple[str, Any]],
                      comparison: str | None, range_objs: list[Any], limit: int | None, start: dict[str, Any] | None,
                      forward: bool) -> list[Any] | None:
    """The window of an index query, for an index partitioned by the table's partition key."""
    if [name for name, _ in hash_conditions] != [self.hash_key_attr]:
        return None
    hash_key = hash_conditions[0][1]
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    index = next((i for i in self.global_indexes if i.name == index_name), None)
    if not isinstance(index, GlobalSecondaryIndex) or hash_key is None or limit is None:
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if hashes != [self.hash_key_attr] or len(ranges) != 1 or getattr(self, "range_key_type", None) != "S":
        return None
    if comparison is not None and (comparison.upper() not in _BOUNDED or any(o.type != "S" for o in range_objs)):
        return None
    partition = self.items.get(hash_key)
    if not isinstance(partition, dict):
        return None
    values, pairs = index_keys.pairs(self, index_name, ranges[0], hash_key, partition)
    low, high = _bounds(values, comparison, [o.value for o in range_objs])
    if start is not None:
        at = (start.get(ranges[0], {}).get("S"), start.get(self.range_key_attr, {}).get("S"))
        if at[0] is None or at[1] is None:
            return None
        if forward:
            low = max(low, bisect.bisect_right(pairs, at))
        else:
            high = min(high, bisect.bisect_left(pairs, at))
    if high - low > limit + 1:
        low, high = (low, low + limit + 1) if forward else (high - limit - 1, high)
    low, high = (low, min(high + 1, len(pairs))) if forward else (max(low - 1, 0), high)
    return [partition[DynamoType({"S": range_value})] for _, range_value in pairs[low:high]]



def _forget_on_update(index_keys: IndexKeyIndex) -> None:
    """The backend's ``update_item`` changes an item in place: its partition's index keys go."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    original_update = DynamoDBBackend.update_item

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            table = self.get_table(table_name)
            if table.hash_key_attr in key:
                index_keys.forget(table, DynamoType(key[table.hash_key_attr]))

    _replace(DynamoDBBackend, "update_item", update_item)


def _sorted_key_queries(index: SortKeyIndex, index_keys: IndexKeyIndex) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_query = index.unpatched_query = Table.query
    original_put = Table.put_item
    original_delete = Table.delete_item

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        index.added(self, item)
        index_keys.forget(self, item.hash_key)
        return item

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = original_delete(self, hash_key, range_key)
        index.removed(self, hash_key, range_key)
        index_keys.forget(self, hash_key)
        return item

    def candidates(self: Any, hash_key: Any, comparison: str | None, range_objs: list[Any], limit: int | None,
                   start: dict[str, Any] | None, forward: bool) -> list[Any] | None:
        partition = self.items.get(hash_key)
        if not isinstance(partition, dict) or not partition:
            return None
        if comparison is not None and (comparison.upper() not in _BOUNDED or any(o.type != "S" for o in range_objs)):
            return None
        if getattr(self, "range_key_type", None) != "S":  # declared in the key schema, enforced on write
            return None
        keys = index.keys(self, hash_key, partition)
        low, high = _bounds(keys, comparison, [o.value for o in range_objs])
        if start is not None:
            start_value = start.get(self.range_key_attr, {}).get("S")
            if start_value is None:
                return None
            if forward:
                low = max(low, bisect.bisect_right(keys, start_value))
            else:
                high = min(high, bisect.bisect_left(keys, start_value))
        if limit is not None and high - low > limit + 1:
            low, high = (low, low + limit + 1) if forward else (high - limit - 1, high)
        # One more key beyond the window, matching or not: moto reports LastEvaluatedKey when it
        # meets any further item after a full page, and this keeps that answer identical.
        low, high = (low, min(high + 1, len(keys))) if forward else (max(low - 1, 0), high)
        return [partition[DynamoType({"S": value})] for value in keys[low:high]]

    def query(self: Any, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
              exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
              index_name: Any = None, consistent_read: Any = False, filter_expression: Any = None,
              **kwargs: Any) -> Any:
        def run() -> Any:
            return original_query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                  scan_index_forward, projection_expressions, index_name, consistent_read,
                                  filter_expression, **kwargs)

        legacy_filters = set(kwargs) - {"hash_key_conditions", "range_key_conditions"}
        multi_attribute = len(kwargs.get("range_key_conditions") or ()) > 1
        if not self.range_key_attr or legacy_filters or multi_attribute:
            return run()
        forward = scan_index_forward is not False
        chosen = (
            _index_candidates(index_keys, self, index_name,
                              kwargs.get("hash_key_conditions") or [(self.hash_key_attr, hash_key)],
                              range_comparison, range_objs, limit, exclusive_start_key, forward)
            if index_name is not None
            else candidates(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, forward)
        )
        if chosen is None:
            return run()
        self.all_items = lambda: chosen  # moto's query evaluates exactly these items
        try:
            return run()
        finally:
            del self.all_items

    _replace(Table, "query", query)
    _replace(Table, "put_item", put_item)
    _replace(Table, "delete_item", delete_item)
    _forget_on_update(index_keys)


def install() -> SortKeyIndex | None:
    """Install the speed-up in this process (once); None, leaving moto alone, on another moto version."""
    if _index:
        return _index[0]
    import moto

    if moto.__version__ != CHECKED_MOTO_VERSION:
        print(f"bench: moto {moto.__version__} installed, speed-ups checked against {CHECKED_MOTO_VERSION}: "
              "not installed; list and import figures include moto's O(table) costs", file=sys.stderr)
        return None
    index = SortKeyIndex()
    _sorted_key_queries(index, IndexKeyIndex())
    _index.append(index)
    return index


def uninstall() -> None:
    """Put back what ``install`` replaced."""
    while _replaced:
        owner, name, original = _replaced.pop()
        setattr(owner, name, original)
    _index.clear()


@contextmanager
def installed() -> Iterator[SortKeyIndex | None]:
    """The speed-ups for the duration of a block (the equivalence tests); an outer install stays."""
    outer = bool(_index)
    index = install()
    try:
        yield index
    finally:
        if not outer:
            uninstall()
