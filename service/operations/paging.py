"""Paging of the management API's lists: `?limit=` (1 to 100, default 100) and `?cursor=`.

The cursor is opaque to callers: pass back the `next_cursor` of the previous page (null on the
last one). It counts the items already seen, so an item added or removed meanwhile can shift
a later page by one.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import QueryParams

from service.domain.problems import Invalid

MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    """Which slice of a list a caller asked for."""

    offset: int
    limit: int

    @classmethod
    def of(cls, query: QueryParams) -> Page:
        """The page a query asks for; `Invalid` naming `limit` or `cursor` if either is bad."""
        raw_limit = query.get("limit", str(MAX_LIMIT))
        raw_cursor = query.get("cursor", "0")
        if not _whole(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise Invalid("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        if not _whole(raw_cursor) or len(raw_cursor) > 9:
            raise Invalid("cursor", "not a cursor this API gave out")
        return cls(offset=int(raw_cursor), limit=int(raw_limit))

    def next(self, total: int) -> str | None:
        """The cursor of the page after this one, of `total` items; None if this is the last."""
        end = self.offset + self.limit
        return str(end) if end < total else None


def _whole(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `²`, which `int` refuses)."""
    return text.isascii() and text.isdigit()
