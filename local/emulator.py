"""The embedded AWS emulator: moto's server on a loopback port, in a thread of this process.

One difference from moto's own ``ThreadedMotoServer``: DynamoDB requests are applied one at a
time. Real DynamoDB applies each request atomically, and the service relies on that (a conditional
write either sees the condition hold and writes, or not); moto's backend checks a condition and
then writes without a lock, so two concurrent requests could both pass one ``version = :v`` check.
S3 and SQS requests stay concurrent (SQS long polls must not block anything else).

A second difference: key-range queries on a table's primary key find their page in O(log n + page)
through a sorted index of each partition's sort keys, as DynamoDB does, instead of sorting the
whole table on every query as moto does. Without it a list page slows with the size of the
table, whoever owns the data, and no measurement of the service's own scaling is possible. The
index only chooses which items moto's own query code then evaluates, so results, ``Limit``,
``LastEvaluatedKey`` and filters are moto's.

A third: ``TransactWriteItems`` keeps an undo log of the items it touches. moto backs up the
whole table (a deep copy) once per action of every transaction, which makes a 50-action
transaction on a table of 100,000 items take seconds; the undo log restores exactly the touched
items when the transaction is cancelled, which is all the backup was for.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
from typing import Any

from local.hosts import HostCheck, wsgi_server

_DYNAMODB_TARGET = "DynamoDB_"


class _AtomicDynamoDB:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGET):
            with self.lock:
                # Consume the body under the lock: the response is fully computed before release.
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


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


_installed: dict[str, SortKeyIndex] = {}


def install_sorted_key_queries() -> SortKeyIndex:
    """Patch moto's Table so primary-key queries evaluate only the page they need (once per process)."""
    if "index" in _installed:
        return _installed["index"]
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    index = SortKeyIndex()
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

    for name, patched in (("query", query), ("put_item", put_item), ("delete_item", delete_item)):
        setattr(Table, name, patched)
    _installed["index"] = index
    return index


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


def install_item_level_transactions() -> None:
    """Patch moto's ``transact_write_items`` to roll back through an undo log (once per process)."""
    if "transactions" in _installed_flags:
        return
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
                if "index" in _installed:
                    _installed["index"].forget(table, hash_key)
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010 - restoring the module attribute patched above

    setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010
    _installed_flags.add("transactions")


_installed_flags: set[str] = set()


class Emulator:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        install_sorted_key_queries()
        install_item_level_transactions()
        # Only requests for the emulator's own names (local/hosts.py); presigned URLs name it so.
        app = HostCheck(_AtomicDynamoDB(DomainDispatcherApplication(create_backend_app)), self.port)
        self._server = wsgi_server(self.host, self.port, app, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aws-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
