"""Speed-ups on moto's DynamoDB internals, for the benchmark's process only (``bench/run.py``).

Neither the service, nor the local stack, nor the tests use these: they run moto unmodified
(``local/emulator.py``). The benchmark needs them because moto's cost per request grows with the
size of the whole table, which DynamoDB's does not, and the benchmark loads tables of 50,000 to
100,000 items to measure how the *service* scales. Without them the list and import figures
measure moto.

Each speed-up replaces private methods of moto, so each is checked against one moto version,
``CHECKED_MOTO_VERSION``; with any other version ``install`` leaves moto alone and says so (the
benchmark then reports moto's own scaling). ``tests/bench/test_moto_speedups.py`` checks that
the answers are moto's own, on random data, for the version installed.

1. **Sorted-key queries** (``Table.query``, ``Table.put_item``, ``Table.delete_item``; moto
   5.2.5). moto's ``Table.query`` walks every item of the table (``Table.all_items``), keeps the
   partition's, sorts them and then reads the page: one list page costs O(table). DynamoDB
   finds a page in O(log n + page). A sorted index of each partition's sort keys, kept in step
   with moto's writes, chooses the items moto's own query code then evaluates, so results,
   ``Limit``, ``LastEvaluatedKey`` and filters are moto's. Measured with moto 5.2.5 on 2 cores:
   see docs/LOCAL.md.
2. **Item-level transaction rollback** (``DynamoDBBackend.transact_write_items`` and the ``copy``
   module as moto's DynamoDB models see it; moto 5.2.5). moto deep-copies the whole table once
   per action of every ``TransactWriteItems``, as a backup to restore on cancellation: a
   50-action transaction (one import chunk) on a table of 100,000 items takes seconds. An undo
   log of the touched items restores exactly those on cancellation, which is all the backup
   was for.
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

    def forget(self, table: Any, hash_key: Any) -> None:
        """Drop a partition's keys (rebuilt on the next query) after changes made behind moto's back."""
        self._keys.pop((id(table), hash_key), None)

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


# What install() replaced, to put back: (owner, attribute name, original value).
_replaced: list[tuple[Any, str, Any]] = []
_index: list[SortKeyIndex] = []


def _replace(owner: Any, name: str, value: Any) -> Any:
    original = getattr(owner, name)
    _replaced.append((owner, name, original))
    setattr(owner, name, value)
    return original


def _sorted_key_queries(index: SortKeyIndex) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_query = index.unpatched_query = Table.query
    original_put = Table.put_item
    original_delete = Table.delete_item

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        index.added(self, item)
        return item

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = original_delete(self, hash_key, range_key)
        index.removed(self, hash_key, range_key)
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
        if index_name is not None or not self.range_key_attr or legacy_filters or multi_attribute:
            return run()
        chosen = candidates(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                            scan_index_forward is not False)
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


class _NoTableCopies:
    """Stands in for the ``copy`` module inside moto's DynamoDB models during a transaction:
    tables are not copied (the undo log restores what changed); everything else is."""

    def __init__(self, real: Any, table_type: type) -> None:
        self.real = real
        self.table_type = table_type

    def deepcopy(self, value: Any, *args: Any) -> Any:
        return value if isinstance(value, self.table_type) else self.real.deepcopy(value, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _item_level_transactions(index: SortKeyIndex) -> None:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        undo: list[tuple[Any, Any, Any, Any]] = []
        for action in transact_items:
            _, op = next(iter(action.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or {
                name: op.get("Item", {}).get(name) for name in (table.hash_key_attr, table.range_key_attr) if name
            }
            if any(value is None for value in key.values()):
                continue
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_key, range_key)
            undo.append((table, hash_key, range_key, copy.deepcopy(current)))
        setattr(models, "copy", _NoTableCopies(copy, Table))  # noqa: B010 - see _NoTableCopies
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, before in reversed(undo):
                partition = table.items[hash_key] if range_key is not None else table.items
                slot = range_key if range_key is not None else hash_key
                if before is None:
                    partition.pop(slot, None)
                else:
                    partition[slot] = before
                index.forget(table, hash_key)
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010 - restoring the module attribute replaced above

    _replace(models.DynamoDBBackend, "transact_write_items", transact_write_items)


def install() -> SortKeyIndex | None:
    """Install both speed-ups in this process (once); None, leaving moto alone, on another moto version."""
    if _index:
        return _index[0]
    import moto

    if moto.__version__ != CHECKED_MOTO_VERSION:
        print(f"bench: moto {moto.__version__} installed, speed-ups checked against {CHECKED_MOTO_VERSION}: "
              "not installed; list and import figures include moto's O(table) costs", file=sys.stderr)
        return None
    index = SortKeyIndex()
    _sorted_key_queries(index)
    _item_level_transactions(index)
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
