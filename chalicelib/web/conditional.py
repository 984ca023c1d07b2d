"""Conditional requests: ``If-Match`` and ``If-None-Match`` as RFC 9110 defines them.

Both headers are parsed by one function, the same way: ``*``, or a list of entity tags in which a
comma inside the quotes belongs to the tag and empty list elements are ignored (section 5.6.1).
A version's ETag is its decimal number in quotes; tags are compared as strings, so ``"01"`` is
not version 1's tag. ``If-Match`` uses the strong comparison (a weak tag never matches),
``If-None-Match`` the weak one.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from chalicelib.problems import Problem
from chalicelib.store.writes import Precondition


class EntityTag(NamedTuple):
    weak: bool
    opaque: str  # the characters between the quotes


# RFC 9110 section 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E /
# obs-text. A comma may sit inside the quotes, so a list is split by scanning, never by commas.
# obs-text is taken to be any non-ASCII character: headers arrive here already decoded.
_LIST_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\U0010ffff]*)")?[ \t]*(?:,|\Z)')
MAX_ENTITY_TAGS = 50
# A version is a positive integer in canonical decimal form: the only tags that can ever match.
_VERSION_TAG = re.compile(r"[1-9][0-9]{0,17}")


def parse_entity_tags(value: str, header: str) -> Literal["*"] | list[EntityTag]:
    """``*`` or the list of entity tags of an ``If-Match`` / ``If-None-Match`` value.

    Empty list elements are ignored (RFC 9110 section 5.6.1); anything else that is not an entity
    tag makes the header malformed (400). Both headers are parsed here, the same way.
    """
    stripped = value.strip(" \t")
    if stripped == "*":
        return "*"
    tags: list[EntityTag] = []
    position = 0
    while position < len(stripped):
        match = _LIST_ELEMENT.match(stripped, position)
        if match is None or match.end() == position:
            raise _malformed(header, f'{header} must be "*" or a list of quoted entity tags such as "3"')
        if match.group(2) is not None:
            tags.append(EntityTag(weak=match.group(1) is not None, opaque=match.group(2)))
            if len(tags) > MAX_ENTITY_TAGS:
                raise _malformed(header, f"{header} may name at most {MAX_ENTITY_TAGS} entity tags")
        position = match.end()
    if not tags:
        raise _malformed(header, f"{header} names no entity tag")
    return tags


def _malformed(header: str, detail: str) -> Problem:
    return Problem("bad-request", detail, errors=[{"pointer": f"/header/{header}", "detail": detail}])


def _version_of(tag: EntityTag) -> int | None:
    """The version a tag names, compared as RFC 9110 compares tags: character by character."""
    return int(tag.opaque) if _VERSION_TAG.fullmatch(tag.opaque) else None


def parse_if_match(value: str | None) -> Precondition:
    """``If-Match``: None, ``"*"``, or the versions its tags name (strong comparison: weak tags,
    and tags such as ``"01"`` that are not exactly a version's ETag, match nothing)."""
    if value is None:
        return None
    tags = parse_entity_tags(value, "If-Match")
    if tags == "*":
        return "*"
    versions = (_version_of(tag) for tag in tags if not tag.weak)
    return frozenset(version for version in versions if version is not None)


def if_none_match_hits(value: str | None, version: int) -> bool:
    """Whether ``If-None-Match`` matches the current version (weak comparison, as RFC 9110 says)."""
    if value is None:
        return False
    tags = parse_entity_tags(value, "If-None-Match")
    return tags == "*" or any(_version_of(tag) == version for tag in tags)
