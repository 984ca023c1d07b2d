"""Entity-tag lists as RFC 9110 defines them (``chalicelib/web/conditional.py``), without the API around."""

from __future__ import annotations

import pytest

from chalicelib.problems import Problem
from chalicelib.web.conditional import MAX_ENTITY_TAGS, EntityTag, if_none_match_hits, parse_entity_tags, parse_if_match


@pytest.mark.parametrize(("value", "tags"), [
    ('"1"', [EntityTag(False, "1")]),
    ('W/"1"', [EntityTag(True, "1")]),
    ('"a,b"', [EntityTag(False, "a,b")]),
    ('"a,b", W/"c"', [EntityTag(False, "a,b"), EntityTag(True, "c")]),
    ('"1",', [EntityTag(False, "1")]),
    (',"1"', [EntityTag(False, "1")]),
    (' , "1" ,, "2" , ', [EntityTag(False, "1"), EntityTag(False, "2")]),
    ('"1"\t,\t"2"', [EntityTag(False, "1"), EntityTag(False, "2")]),
    ('""', [EntityTag(False, "")]),
    ('"²"', [EntityTag(False, "²")]),
    ('"!#~"', [EntityTag(False, "!#~")]),
])
def test_lists_of_entity_tags(value, tags):
    assert parse_entity_tags(value, "If-Match") == tags


@pytest.mark.parametrize("value", ["*", " * ", "\t*"])
def test_star(value):
    assert parse_entity_tags(value, "If-Match") == "*"


@pytest.mark.parametrize("value", [
    "", " ", ",", ", ,", "1", '"1', '1"', '"1" "2"', '"1"x', 'x"1"', 'w/"1"', 'W/ "1"', 'W/1', '"a b"', '"a"b"',
    "**", '*, "1"', '"1",x', '"\x7f"', '"\x00"', '"1"\n', '"\t"', 'X"1"', '"1"X',
])
@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
def test_anything_else_is_malformed_with_a_pointer_to_the_header(value, header):
    with pytest.raises(Problem) as raised:
        parse_entity_tags(value, header)
    assert raised.value.status == 400
    assert header in raised.value.detail
    assert raised.value.document("r")["errors"] == [{"pointer": f"/header/{header}", "detail": raised.value.detail}]


def test_at_most_fifty_tags_empty_elements_not_counted():
    fifty = ", ".join(f'"{n}"' for n in range(MAX_ENTITY_TAGS))
    assert len(parse_entity_tags(fifty + ", ,,", "If-Match")) == MAX_ENTITY_TAGS
    with pytest.raises(Problem, match="at most 50"):
        parse_entity_tags(fifty + ', "x"', "If-Match")


@pytest.mark.parametrize(("value", "versions"), [
    (None, None),
    ("*", "*"),
    ('"1"', frozenset({1})),
    ('"1", "7"', frozenset({1, 7})),
    ('W/"1"', frozenset()),
    ('W/"1", "2"', frozenset({2})),
    ('"01"', frozenset()),
    ('"0"', frozenset()),
    ('"-1"', frozenset()),
    ('"+1"', frozenset()),
    ('"1.0"', frozenset()),
    ('"1e3"', frozenset()),
    ('"²"', frozenset()),
    ('"١"', frozenset()),
    ('"a,1"', frozenset()),
    ('"999999999999999999"', frozenset({999_999_999_999_999_999})),
    ('"1000000000000000000"', frozenset()),
    ('"' + "1" * 5000 + '"', frozenset()),
])
def test_if_match_names_only_exact_version_tags(value, versions):
    assert parse_if_match(value) == versions


@pytest.mark.parametrize(("value", "version", "hit"), [
    (None, 1, False),
    ("*", 1, True),
    ('"1"', 1, True),
    ('"1"', 2, False),
    ('W/"1"', 1, True),
    ('"9", "1"', 1, True),
    ('"9", W/"8", "1"', 1, True),
    ('"1", "9"', 9, True),
    ('"01"', 1, False),
    ('"a,1"', 1, False),
    ('"1",', 1, True),
    ('"' + "1" * 5000 + '"', 1, False),
])
def test_if_none_match_any_tag_weakly(value, version, hit):
    assert if_none_match_hits(value, version) is hit


def test_if_none_match_is_refused_like_if_match():
    with pytest.raises(Problem):
        if_none_match_hits('"1" "2"', 1)
