"""What the access endpoints share: parameter types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from shared.http.pagination import MAX_PAGE_SIZE

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
