"""What the content endpoints share: parameter types, answers with their
ETags, conditional GETs."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.content.catalog import CatalogCache, etag_matches, public_headers
from services.content.editing import etag, is_overdue
from services.content.families import Family
from services.content.manuscript_analysis import ANALYSIS_VERSION, findings
from services.content.models import Book, Submission
from services.content.schemas import BookOut, ManuscriptAnalysis, SubmissionOut
from services.content.settings import ContentSettings
from shared.contracts.clock import now_utc
from shared.http.problems import problem_responses

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The version you read (the ETag); where sent, a change to anything "
        "else is a 412",
        max_length=100,
    ),
]
# Writes that need the version say so in the document (#38: documented optional,
# the generated client left it out, and every such write answered 428); without
# it the answer is still a 428 problem (shared/http/problems.py), not a 422.
IfMatchRequired = Annotated[
    str,
    Header(
        alias="If-Match",
        description="The version you read (the ETag): a change to anything else is a 412",
        max_length=100,
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1000)]

CHANGE_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)
# What a conditional GET answers (#38: documented nowhere).
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ETag sent as If-None-Match is still current"}
}


def with_etag(model: SubmissionOut | BookOut) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), headers={"ETag": etag(model.version)})


def etag_of(payload: Any) -> dict[str, str]:
    return {"ETag": etag(int(payload["version"]))}


def submission_out(row: Submission, settings: ContentSettings) -> SubmissionOut:
    measured = row.analysis
    out = SubmissionOut.model_validate(row)
    out.overdue = is_overdue(row, settings.review_overdue_days, now_utc())
    if measured is not None and measured.get("version") == ANALYSIS_VERSION:
        out.analysis = ManuscriptAnalysis.model_validate(
            {**measured, "findings": findings(measured, row.language, row.reading_level)}
        )
    return out


def book_out(row: Book, settings: ContentSettings, family: Family) -> BookOut:
    return BookOut.of(row, settings.published_assets_url, family)


def body_etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def tagged(answer: BaseModel) -> tuple[str, bytes]:
    """An answer's bytes and their ETag, as the catalog cache keeps them."""
    body = answer.model_dump_json().encode()
    return body_etag(body), body


def book_page_key(book_id: uuid.UUID) -> tuple[str, uuid.UUID]:
    """Where a book's public page (`GET /v1/books/{id}`) is kept in the catalog cache."""
    return ("book", book_id)


def book_page(row: Book, settings: ContentSettings, family: Family) -> tuple[str, bytes]:
    """A book's page as `GET /v1/books/{id}` answers it: its ETag and bytes (the
    endpoint and the start-up prime build it here, so they cannot differ)."""
    return tagged(book_out(row, settings, family))


async def catalog_answer(
    cache: CatalogCache,
    key: tuple[Any, ...],
    load: Callable[[], Awaitable[tuple[str, bytes]]],
    *,
    public: bool,
    if_none_match: str | None,
    media_type: str = "application/json",
) -> Response:
    """A public answer from the catalog cache (`load` fills it on a miss); a
    manager's read fresh every time, never cached."""
    tag, body = await (cache.get_or_load(key, load) if public else load())
    return conditional(body, tag, if_none_match, public=public, media_type=media_type)


def conditional(
    body: bytes,
    tag: str,
    if_none_match: str | None,
    *,
    public: bool,
    media_type: str = "application/json",
) -> Response:
    if public:
        headers = {k.decode(): v.decode() for k, v in public_headers(tag)}
    else:
        headers = {"ETag": tag, "Cache-Control": "private, no-store"}
    if etag_matches(tag, if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
