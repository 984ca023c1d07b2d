"""List pages: one way to read ``limit``, ``order`` and ``cursor``, and to mint the next cursor.

Every listing of the API pages the same way (API.md "Pagination"): ``limit`` from 1 to
``MAX_LIMIT`` (default ``DEFAULT_LIMIT``), ``order`` ``asc`` or ``desc``, and an opaque ``cursor``
bound to the tenant, the listing and the order (``cursor.py``). A page itself is one ``Query``,
read by the listing's repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.problems import query_error
from chalicelib.store import cursor as cursors

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# ASCII digits only, and few of them: ``str.isdigit`` also accepts "²" and "١٢", which int()
# refuses or reads as another number, and int() refuses literals over 4,300 digits.
_LIMIT = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class PageRequest:
    """What a client asked of one page of a listing."""

    tenant: str
    listing: str
    limit: int
    order: str
    after: str | None  # the last id of the previous page, from the cursor

    @property
    def descending(self) -> bool:
        return self.order == "desc"


def page_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise query_error("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def page_request(params: Mapping[str, str], *, tenant: str, listing: str, secrets: tuple[bytes, ...]) -> PageRequest:
    """The page asked for by the query ``params``; a malformed one is a 400 problem."""
    limit = page_limit(params.get("limit"))
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise query_error("order", "must be 'asc' or 'desc'")
    if not secrets:
        raise RuntimeError("CURSOR_SECRETS is not set for this stage")
    after = None
    if params.get("cursor"):
        try:
            after = cursors.decode(params["cursor"], tenant=tenant, listing=listing, order=order, secrets=secrets)
        except cursors.InvalidCursor as exc:
            raise query_error("cursor", str(exc)) from exc
    return PageRequest(tenant=tenant, listing=listing, limit=limit, order=order, after=after)


def next_cursor(request: PageRequest, last_id: str | None, secret: bytes) -> str | None:
    """The cursor of the page after the one that ended at ``last_id`` (None: that was the last)."""
    if last_id is None:
        return None
    return cursors.encode(last_id, tenant=request.tenant, listing=request.listing, order=request.order, secret=secret)
