"""HTTP endpoints of the delivery service (thin: rules live in service.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from services.delivery.dependencies import DeliveryServiceDep, ReadingAppReader
from services.delivery.reading import reading_list_json
from services.delivery.schemas import (
    CookiesOut,
    DeliveryOut,
    DeliveryRequest,
    OfflineBatch,
    OfflineBatchOut,
    Progression,
    ProgressOut,
    ProgressUpdate,
)
from shared.contracts.clock import now_utc
from shared.http.asgi import client_ip
from shared.http.auth import CurrentPrincipal
from shared.http.problems import problem_responses

deliveries = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])
reading = APIRouter(prefix="/v1/reading", tags=["reading"])


@deliveries.get(
    "/{book_id}/acquire",
    status_code=302,
    summary="OPDS acquisition: a 302 to a fresh signed link to the book's PDF",
    description="The acquisition link of content's OPDS feeds (`/opds`): for a signed-in "
    "reader (`Authorization: Bearer`, from the OPDS authentication document's password "
    "grant), the same decision and the same link as `POST /v1/deliveries`, answered as a "
    "redirect a reading app follows. Never cached.",
    response_class=Response,
    responses={
        302: {
            "description": "Found: the signed link, to follow (no body)",
            "headers": {
                "Location": {
                    "description": "The signed link to the book's PDF",
                    "schema": {"type": "string", "format": "uri"},
                }
            },
            "content": {},
        },
        **problem_responses(401, 403, 404, 429, 503),
    },
)
async def acquire(
    book_id: uuid.UUID,
    request: Request,
    principal: ReadingAppReader,
    service: DeliveryServiceDep,
) -> Response:
    link = await service.issue(principal, book_id, client_ip=client_ip(request.scope))
    return RedirectResponse(link.url, status_code=302, headers={"Cache-Control": "no-store"})


@deliveries.post(
    "",
    response_model=DeliveryOut,
    summary="A short-lived signed link to a published book's PDF (or its lite edition)",
    description="Bound to the book's current edition (object version); lives a few "
    "minutes and never longer than the caller's token. Each link issued is recorded "
    "(`delivery.issued`). Limited per reader (429 with Retry-After).",
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
async def issue_link(
    body: DeliveryRequest,
    principal: CurrentPrincipal,
    request: Request,
    service: DeliveryServiceDep,
) -> Response:
    link = await service.issue(
        principal, body.book_id, client_ip=client_ip(request.scope), book_format=body.format
    )
    return Response(link.json(), media_type="application/json")


@deliveries.post(
    "/cookies",
    response_model=CookiesOut,
    summary="CloudFront signed cookies that open all of one book's assets",
    description="Only where links are signed by CloudFront; elsewhere a 404 "
    "`cookies-not-configured` (use `POST /v1/deliveries`).",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def issue_cookies(
    body: DeliveryRequest,
    principal: CurrentPrincipal,
    request: Request,
    service: DeliveryServiceDep,
) -> JSONResponse:
    cookies, expires_at = await service.issue_cookies(
        principal, body.book_id, client_ip=client_ip(request.scope)
    )
    out = CookiesOut(resource=cookies.resource, expires_at=expires_at, cookies=cookies.values)
    response = JSONResponse(out.model_dump(mode="json"))
    max_age = max(1, int((expires_at - now_utc()).total_seconds()))
    for name, value in cookies.values.items():
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=f"/books/{body.book_id}/",
            domain=service.settings.cookie_domain,
            secure=True,
            httponly=True,
            samesite="none",
        )
    return response


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
    service: DeliveryServiceDep,
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
    body: OfflineBatch, principal: CurrentPrincipal, service: DeliveryServiceDep
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
    book_id: uuid.UUID, principal: CurrentPrincipal, service: DeliveryServiceDep
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
    book_id: uuid.UUID, body: Progression, principal: CurrentPrincipal, service: DeliveryServiceDep
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
    service: DeliveryServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    states = await service.my_reading(principal, limit=limit)
    # By hand, as the fast path answers (the same shape as the response model).
    return Response(reading_list_json(states), media_type="application/json")


ROUTERS = [deliveries, reading]
