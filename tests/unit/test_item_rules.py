"""The request-path validators (chalicelib/items/rules.py, pydantic-core alone) against the pydantic
models (chalicelib/items/models.py, which generate the OpenAPI schemas and validate imported rows).

- Structure: each body model's fields are exactly the rules' body schema (same fields, order,
  defaults, checks), and it forbids other fields as the validator does.
- Property (hypothesis, derandomized; the profile's count of examples, tests/conftest.py): random and
  hostile bodies get the same outcome from both: accepted or not, the same normalised values (types
  included: trimmed names, deduplicated tags, ``expires_at`` in UTC at millisecond precision,
  numbers as ``int`` or ``Decimal``), and the same problem ``errors`` (pointer and detail).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.items import models, rules
from chalicelib.limits import MAX_DATA_DEPTH, MAX_TAG_LENGTH, MAX_TAGS
from chalicelib.util import clock, jsonutil

SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
SHAPES: list[rules.Shape] = ["ItemCreate", "ItemReplace", "ItemPatch"]
NOW = datetime(2030, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC).timestamp()


def _without_metadata(schema: Any) -> Any:
    """A core schema less what only the JSON schema reads (descriptions, examples)."""
    if isinstance(schema, dict):
        return {key: _without_metadata(value) for key, value in schema.items() if key != "metadata"}
    if isinstance(schema, list):
        return [_without_metadata(value) for value in schema]
    return schema


@pytest.mark.parametrize("shape", SHAPES)
def test_each_body_model_is_made_of_the_rules_body_schema(shape: rules.Shape) -> None:
    model = getattr(models, shape)
    core = model.__pydantic_core_schema__
    assert core["type"] == "model"
    assert core["config"]["extra_fields_behavior"] == "forbid"
    fields = _without_metadata(core["schema"])
    assert fields["type"] == "model-fields"
    assert list(fields["fields"]) == list(rules.BODIES[shape])
    assert fields["fields"] == _without_metadata(rules.body_schema(shape)["fields"])


# -- the property ---------------------------------------------------------------------------------

FIELD_NAMES = ["name", "description", "tags", "data", "expires_at", "id"]
OTHER_KEYS = ["version", "created_at", "updated_at", "Name", "", "extra", "data.x"]

padded = st.builds(lambda pad, text, tail: pad + text + tail, st.sampled_from(["", " ", "\t", "\n ", "\u3000"]),
                   st.text(max_size=12), st.sampled_from(["", " ", "  \t"]))
texts = st.one_of(
    padded,
    st.sampled_from(["", " ", "   ", "\x00", "é", "😀"]),
    st.integers(min_value=0, max_value=3).map(lambda n: "x" * (MAX_TAG_LENGTH - 1 + n)),
    st.integers(min_value=0, max_value=3).map(lambda n: " " + "y" * (199 + n) + " "),
    st.integers(min_value=0, max_value=2).map(lambda n: "d" * (3999 + n)),
)
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.sampled_from([Decimal("1E+999"), Decimal("1E-131"), Decimal("9.99E+125"), Decimal("1E+126"), Decimal("-0.0"),
                     Decimal("NaN"), Decimal("Infinity"), 10**38, 10**38 - 1, 1.5, float("nan")]),
)
timestamps = st.one_of(
    st.sampled_from([
        "2031-01-01T00:00:00Z", "2031-01-01t00:00:00z", "2031-01-01 00:00:00+02:00", "2031-01-01T00:00:00.123456789Z",
        "2031-01-01T00:00:00", "2031-02-30T00:00:00Z", "2020-01-01T00:00:00Z", "2030-06-01T12:00:00.500Z",
        "2030-06-01T12:00:00.5009Z", "2030-06-01T12:00:00.501Z", "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:30:00+01:00", "2031-01-01T25:00:00Z", "2031-01-01T00:00:00+24:00", "tomorrow", "",
    ]),
    st.datetimes(min_value=datetime(2029, 1, 1), max_value=datetime(2032, 1, 1)).map(lambda d: d.isoformat() + "Z"),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    leaves, lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
    max_leaves=12,
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"n": value}
    return value


data_values = st.one_of(
    st.dictionaries(texts, json_values, max_size=5),
    st.integers(min_value=MAX_DATA_DEPTH - 1, max_value=MAX_DATA_DEPTH + 1).map(_nested),
    st.integers(min_value=16_370, max_value=16_390).map(lambda n: {"s": "z" * (n - 8)}),  # around 16 KiB compact
    json_values,
)
tag_lists = st.one_of(
    st.lists(st.one_of(texts, st.sampled_from(["a", " a", "a "])), max_size=MAX_TAGS + 2),
    st.integers(min_value=MAX_TAGS - 1, max_value=MAX_TAGS + 1).map(lambda n: [f"t{i}" for i in range(n)]),
    json_values,
)
values_by_field = {
    "name": st.one_of(texts, json_values),
    "description": st.one_of(texts, json_values),
    "tags": tag_lists,
    "data": data_values,
    "expires_at": st.one_of(timestamps, json_values),
    "id": st.one_of(st.sampled_from(["01J0ABC", "a" * 64, "a" * 65, "bad id", "-_", ""]), texts, json_values),
}
fields = st.one_of(*(st.tuples(st.just(name), strategy) for name, strategy in values_by_field.items()),
                   st.tuples(st.sampled_from(OTHER_KEYS), json_values))
# Mostly valid bodies, so that accepted values are compared too, not only errors.
plausible = st.fixed_dictionaries(
    {"name": padded.filter(str.strip)},
    optional={"description": st.one_of(st.none(), padded), "tags": st.lists(st.sampled_from(["a", " a", "b ", "c"]), max_size=5),
              "data": st.dictionaries(texts, json_values, max_size=4), "expires_at": timestamps,
              "id": st.sampled_from(["01J0ABC", "a-b_c"])},
)
bodies = st.one_of(
    plausible,
    st.lists(fields, max_size=7).map(dict),
    st.fixed_dictionaries({"name": texts}, optional={name: values_by_field[name] for name in FIELD_NAMES[1:]}),
    json_values,
)


def _typed(value: Any) -> Any:
    """``value`` with every leaf's type next to it: 1, 1.0, True and Decimal("1") all differ."""
    if isinstance(value, dict):
        return ("dict", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), str(value.tzinfo))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, repr(value))


def _by_model(shape: rules.Shape, body: Any) -> tuple[bool, Any]:
    model = getattr(models, shape)
    try:
        validated = model.model_validate(body)
    except ValidationError as exc:
        return False, rules.to_field_errors(exc)
    return True, _typed({name: getattr(validated, name) for name in model.model_fields})


def _by_rules(shape: rules.Shape, body: Any) -> tuple[bool, Any]:
    try:
        validated = rules.validate(shape, body)
    except ValidationError as exc:
        return False, rules.to_field_errors(exc)
    return True, _typed(validated)


@SETTINGS
@given(shape=st.sampled_from(SHAPES), body=bodies)
def test_the_request_validators_and_the_models_agree(shape: rules.Shape, body: Any) -> None:
    with clock.sources(lambda: NOW, lambda: 0.0):
        assert _by_rules(shape, body) == _by_model(shape, body)


@pytest.mark.parametrize("shape", SHAPES)
def test_hostile_bodies_get_the_same_answer(shape: rules.Shape) -> None:
    """Hand-picked edges the generators reach only by luck; each answer is checked, not just compared."""
    cases: list[Any] = [
        None, [], "x", 1, {}, {"name": None}, {"name": "   "}, {"name": " a ", "tags": [" t", "t ", "t"]},
        {"name": "a", "version": 2, "id": "x", "other": 1}, {"name": "a" * 201}, {"name": "a", "tags": ["a"] * 21},
        {"name": "a", "tags": [""]}, {"name": "a", "tags": None}, {"name": "a", "data": None}, {"name": "a", "data": []},
        {"name": "a", "data": {"n": Decimal("1E+126"), "m": [10**38]}}, {"name": "a", "data": _nested(MAX_DATA_DEPTH + 1)},
        {"name": "a", "expires_at": "2031-01-01 01:00:00.9999+01:00"}, {"name": "a", "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "a", "expires_at": "9999-12-31T23:00:00-05:00"}, {"name": "a", "expires_at": None},
        {"name": "a", "description": "d" * 4001}, {"name": "a", "id": "not valid"}, {"name": 5, "tags": "t"},
    ]
    with clock.sources(lambda: NOW, lambda: 0.0):
        for body in cases:
            assert _by_rules(shape, body) == _by_model(shape, body), body
        accepted, values = _by_rules(shape, {"name": " a ", "tags": [" t", "t ", "u"],
                                             "expires_at": "2031-01-01 01:00:00.9999+01:00", "data": {"n": Decimal("1.50")}})
        assert accepted
        assert dict(values[1])["name"] == ("str", "'a'")
        assert dict(values[1])["tags"] == ("list", [("str", "'t'"), ("str", "'u'")])
        assert dict(values[1])["expires_at"] == ("datetime", "2031-01-01T00:00:00.999000+00:00", "UTC")
        assert dict(values[1])["data"] == ("dict", [("n", ("Decimal", "1.50"))])
        assert _by_rules(shape, {"name": "a", "tags": ["a"] * 21}) == (
            False, [{"pointer": "/tags", "detail": "must have at most 20 entries"}])
        assert _by_rules(shape, {"name": "a" * 201, "version": 1, "data": {"x": {"y": Decimal("1E+126")}}}) == (
            False, [{"pointer": "/name", "detail": "must have at most 200 characters"},
                    {"pointer": "/data/x/y", "detail": "is outside the storable range 1E-130 .. 9.99E+125"},
                    {"pointer": "/version", "detail": "is read-only"}])
        assert _by_rules(shape, []) == (False, [{"pointer": "", "detail": "must be a JSON object"}])


def test_numbers_from_json_text_are_kept_exact() -> None:
    body = jsonutil.loads('{"name": "n", "data": {"i": 12345678901234567890, "d": 0.30000000000000004}}')
    for shape in SHAPES:
        accepted, values = _by_rules(shape, body)
        assert accepted
        assert dict(values[1])["data"] == ("dict", [("i", ("int", "12345678901234567890")),
                                                    ("d", ("Decimal", "0.30000000000000004"))])
