"""A write with its companion entry: which condition failed decides what is raised."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

import pytest

from chalicelib.store.codec import record_of, stored_fields
from chalicelib.store.transactions import ConditionsFailed, create_fresh, transact_with
from chalicelib.store.writes import CompanionRefused

T = os.environ["TABLE_NAME"]
PUT = {"TableName": T, "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}}, "ConditionExpression": "attribute_not_exists(pk)"}
ALSO = {"Put": {"TableName": T, "Item": {"pk": {"S": "p"}, "sk": {"S": "companion"}},
                "ConditionExpression": "attribute_not_exists(pk)"}}


def cancelled(stubbed, *reasons):
    stubbed.add_client_error(
        "transact_write_items", "TransactionCanceledException", modeled_fields={"CancellationReasons": list(reasons)}
    )


def test_a_failed_companion_alone_is_a_refusal(stubbed):
    cancelled(stubbed, {"Code": "None"}, {"Code": "ConditionalCheckFailed"})
    with pytest.raises(CompanionRefused):
        transact_with([{"Put": PUT}], ALSO)


def test_a_failed_own_action_wins_and_carries_the_old_record(stubbed):
    old = {"pk": {"S": "p"}, "sk": {"S": "s"}, "n": {"N": "2"}}
    cancelled(stubbed, {"Code": "None"}, {"Code": "ConditionalCheckFailed", "Item": old},
              {"Code": "ConditionalCheckFailed"})
    with pytest.raises(ConditionsFailed) as raised:
        transact_with([{"Put": PUT}, {"Put": PUT}], ALSO)
    assert raised.value.failed == {1: {"pk": "p", "sk": "s", "n": Decimal(2)}}
    assert raised.value.old == {"pk": "p", "sk": "s", "n": Decimal(2)}


def test_one_action_without_a_companion_is_a_plain_write(stubbed):
    stubbed.add_client_error("put_item", "ConditionalCheckFailedException")
    with pytest.raises(ConditionsFailed) as raised:
        transact_with([{"Put": PUT}])
    assert raised.value.failed == {0: None}


def test_a_fresh_record_already_there_was_written_by_an_earlier_attempt(stubbed):
    cancelled(stubbed, {"Code": "ConditionalCheckFailed"}, {"Code": "ConditionalCheckFailed"})
    assert create_fresh([{"Put": PUT}], ALSO) is False
    stubbed.add_response("transact_write_items", {})
    assert create_fresh([{"Put": PUT}], ALSO) is True


@dataclass(frozen=True)
class Sample:
    id: str
    size: int
    note: str | None = None
    parts: tuple[str, ...] = ()


def test_records_are_stored_and_read_by_field_name():
    stored = stored_fields(Sample("a", 3))
    assert stored == {"id": "a", "size": 3}
    assert record_of(Sample, {**stored, "size": Decimal(3), "pk": "ignored"}) == Sample("a", 3)
    assert record_of(Sample, {"id": "a", "size": Decimal(1)}, parts=("x",)) == Sample("a", 1, parts=("x",))
