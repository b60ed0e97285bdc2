"""Cursor pagination: opaque cursors that name the last row seen (keyset, not OFFSET).

Keyset pagination stays fast on page 500 and never skips or repeats a row when
rows are added between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

from shared.errors import Unprocessable

T = TypeVar("T")

MAX_PAGE_SIZE = 100


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
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable("The cursor is not one this API handed out.") from exc
    if not isinstance(values, list) or len(values) != parts:
        raise Unprocessable("The cursor is not one this API handed out.")
    return [str(v) for v in values]
