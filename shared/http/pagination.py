"""Cursor pagination: opaque cursors that name the last row seen (keyset, not OFFSET).

Keyset pagination stays fast on page 500 and never skips or repeats a row when
rows are added between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

from shared.contracts.errors import Unprocessable

T = TypeVar("T")

MAX_PAGE_SIZE = 100
# Ours are under 100 characters; anything much longer was not handed out here.
MAX_CURSOR_LENGTH = 500
_NOT_OURS = "The cursor is not one this API handed out."


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page"
    )


def after_cursor(
    first: QueryableAttribute[Any] | ColumnElement[Any],
    second: QueryableAttribute[Any] | ColumnElement[Any],
    last_seen: tuple[Any, Any],
    *,
    descending: bool = False,
) -> ColumnElement[bool]:
    """Rows after `last_seen` in (first, second) order: the keyset condition of a page."""
    if descending:
        return or_(first < last_seen[0], and_(first == last_seen[0], second < last_seen[1]))
    return or_(first > last_seen[0], and_(first == last_seen[0], second > last_seen[1]))


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, parts: int) -> list[str]:
    """The values of a cursor; a 422 for anything this API could not have handed out.

    Cursors are plain base64 JSON, so a client can write any: every failure of
    parsing one (deep nesting included) is the client's, never a 500.
    """
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise Unprocessable(_NOT_OURS)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Unprocessable(_NOT_OURS) from exc
    if not isinstance(values, list) or len(values) != parts:
        raise Unprocessable(_NOT_OURS)
    if not all(isinstance(v, str) for v in values):
        raise Unprocessable(_NOT_OURS)
    return values


class _HasId(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


R = TypeVar("R", bound=_HasId)


def time_page(
    rows: list[R], limit: int, moment: Callable[[R], datetime]
) -> tuple[list[R], str | None]:
    """A page of rows fetched with `limit + 1`, and the cursor after its last row
    (None on the last page): the extra row only says whether there is more."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(moment(rows[-1]).isoformat(), rows[-1].id)


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """A (moment, row id) cursor as handed out by `encode_cursor`, or None for page one.

    The moment must carry its zone (every one we hand out does) and be a time
    PostgreSQL and Python can both hold in UTC; anything else is a 422.
    """
    if cursor is None:
        return None
    moment, row_id = decode_cursor(cursor, parts=2)
    return _moment_and_id(moment, row_id)


def decode_flagged_time_cursor(cursor: str | None) -> tuple[bool, datetime, uuid.UUID] | None:
    """A (flagged, moment, row id) cursor: a queue that lists flagged rows first."""
    if cursor is None:
        return None
    flagged, moment, row_id = decode_cursor(cursor, parts=3)
    if flagged not in ("True", "False"):
        raise Unprocessable(_NOT_OURS)
    return (flagged == "True", *_moment_and_id(moment, row_id))


def _moment_and_id(moment: str, row_id: str) -> tuple[datetime, uuid.UUID]:
    try:
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise Unprocessable(_NOT_OURS)
        return parsed.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError) as exc:
        raise Unprocessable(_NOT_OURS) from exc
