"""A speed-up on moto's DynamoDB internals for the unit-test session only (``tests/unit/conftest.py``).

The unit tests share one in-process moto mock (``mock_aws``) and one table for the whole session,
so the table grows with every test. moto's ``DynamoDBBackend.transact_write_items`` deep-copies
the whole table once per action as the backup it restores on cancellation (moto 5.2.5: a
50-action transaction takes 1.8 s on a table of 1,000 items, 9 s on 5,000). Without this, the
session's later tests slow down with everything before them, and time-budgeted ones fail: the
cleanup job's run in ``test_cleanup.py`` no longer completes within its deadline.

The local stack does not need it: its emulator applies ``TransactWriteItems`` at its HTTP layer,
through moto's own API (``local/emulator.py``). In-process there is no HTTP layer to do that in.

**Item-level rollback** (replaces ``moto.dynamodb.models.DynamoDBBackend.transact_write_items``
and, during it, the ``copy`` module as ``moto.dynamodb.models`` sees it; checked against moto
5.2.5). Tables are not copied; an undo log of the items the transaction touches restores exactly
those when it is cancelled, which is all the backup was for. ``tests/unit/test_moto_speedups.py``
checks that transactions still apply whole or not at all. With another moto version ``install``
leaves moto alone and says so.
"""

from __future__ import annotations

import sys
from typing import Any

CHECKED_MOTO_VERSION = "5.2.5"

_installed: set[str] = set()


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


def item_level_transactions() -> bool:
    """Install the item-level rollback (once per process); False, leaving moto alone, on another version."""
    if "transactions" in _installed:
        return True
    import copy

    import moto

    if moto.__version__ != CHECKED_MOTO_VERSION:
        print(f"tests: moto {moto.__version__} installed, the transaction speed-up is checked against "
              f"{CHECKED_MOTO_VERSION}: not installed", file=sys.stderr)
        return False
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
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010 - restoring the module attribute replaced above

    setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010
    _installed.add("transactions")
    return True
