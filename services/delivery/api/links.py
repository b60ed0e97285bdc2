"""Links to books: a signed link to a PDF (JSON, or a redirect for a reading app)
and signed cookies (thin: the rules are in links.py one level up)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from services.delivery.dependencies import LinkServiceDep, ReadingAppReader
from services.delivery.schemas import (
    CookiesOut,
    DeliveryOut,
    DeliveryRequest,
)
from shared.contracts.clock import now_utc
from shared.http.asgi import client_ip
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal

deliveries = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


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
    service: LinkServiceDep,
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
    service: LinkServiceDep,
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
    service: LinkServiceDep,
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
