"""Reading: page turns, reading done offline, progressions and the reading list
(thin: the rules are in reading.py one level up)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from services.delivery.dependencies import ReadingServiceDep
from services.delivery.page_turns import reading_list_json
from services.delivery.schemas import (
    OfflineBatch,
    OfflineBatchOut,
    Progression,
    ProgressOut,
    ProgressUpdate,
)
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal

reading = APIRouter(prefix="/v1/reading", tags=["reading"])


@reading.put(
    "/{book_id}/progress",
    response_model=ProgressOut,
    summary="Record how far the caller has read (monotonic, idempotent)",
    description="A page below the furthest one recorded changes nothing. Reaching the "
    "last page emits `reading.completed` once; progress is announced as "
    "`reading.progressed` each time it crosses another step, not on every page. The "
    "first report fixes the book's `total_pages` for this reader; another length is a 409.",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def record_progress(
    book_id: uuid.UUID,
    body: ProgressUpdate,
    principal: CurrentPrincipal,
    service: ReadingServiceDep,
) -> ProgressOut:
    progress = await service.record_progress(
        principal, book_id, page=body.page, total_pages=body.total_pages
    )
    return ProgressOut.model_validate(progress)


@reading.post(
    "/events",
    response_model=OfflineBatchOut,
    summary="Upload reading done offline: up to 500 open / progress / complete events",
    description="Each event carries an id the device made and the device's time. A retried "
    "upload changes nothing (the same ids: `duplicate`). Events count when they happened "
    "(metrics counts each in its hour). Each event is taken or refused on its own, with "
    "the reason: `in-the-future` (beyond `DELIVERY_OFFLINE_CLOCK_SKEW_SECONDS`), `too-old` "
    "(`DELIVERY_OFFLINE_MAX_AGE_DAYS`), `unknown-book`, `decision-denied`, "
    "`total-pages-mismatch`, `total-pages-required`, `page-required`, `page-beyond-book`. "
    "A malformed batch (more than 500 events, a bad id or time) is a 422 and takes nothing.",
    responses=problem_responses(401, 403, 413, 422, 503),
)
async def upload_offline_reading(
    body: OfflineBatch, principal: CurrentPrincipal, service: ReadingServiceDep
) -> OfflineBatchOut:
    return await service.record_offline(principal, body)


PROGRESSION_TYPE = "application/vnd.readium.progression+json"


@reading.get(
    "/{book_id}/progression",
    summary="Where the reader is in the book, for a reading app (OPDS Progression)",
    description="The furthest page (`locator.locations.position`), the device and the "
    "device time of the last progression (or of the last page turn, if later). 404 "
    "`no-progression` before any.",
    responses={
        **problem_responses(401, 403, 404, 503),
        200: {"content": {PROGRESSION_TYPE: {}}},
    },
)
async def get_progression(
    book_id: uuid.UUID, principal: CurrentPrincipal, service: ReadingServiceDep
) -> Response:
    found = await service.progression(principal, book_id)
    return JSONResponse(found, media_type=PROGRESSION_TYPE)


@reading.put(
    "/{book_id}/progression",
    summary="Store a reading app's progression (OPDS Progression): furthest page wins",
    description="`modified` is when the reading happened, by the device's clock. One "
    "older than the stored progression (or the last page turn) is stale: 409 "
    "`stale-progression` with the current document in `current`. Position is the page; "
    "the book's length is the reader's first reported one, else the publication's. "
    "Page turns and completion are announced as for `PUT .../progress`.",
    responses={
        **problem_responses(401, 403, 404, 409, 422, 503),
        200: {"content": {PROGRESSION_TYPE: {}}},
    },
)
async def put_progression(
    book_id: uuid.UUID, body: Progression, principal: CurrentPrincipal, service: ReadingServiceDep
) -> Response:
    stored = await service.store_progression(principal, book_id, body)
    return JSONResponse(stored, media_type=PROGRESSION_TYPE)


@reading.get(
    "/me",
    response_model=list[ProgressOut],
    summary="The caller's books with their progress, most recently read first",
    responses=problem_responses(401, 403, 422),
)
async def my_reading(
    principal: CurrentPrincipal,
    service: ReadingServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    states = await service.my_reading(principal, limit=limit)
    # By hand, as the fast path answers (the same shape as the response model).
    return Response(reading_list_json(states), media_type="application/json")
