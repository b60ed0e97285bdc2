"""Books: made from approved submissions, their covers, publishing (the rules:
books.py)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.content.api.common import (
    CHANGE_ERRORS,
    IfMatch,
    IfMatchRequired,
    book_out,
    etag_of,
    with_etag,
)
from services.content.books import BookService
from services.content.dependencies import BookServiceDep
from services.content.models import Book
from services.content.schemas import (
    BookCreate,
    BookOut,
    BookUpdate,
    CoverUploadRequest,
    UploadTicket,
)
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, OnceDep

books = APIRouter(prefix="/v1/books", tags=["books"])


async def answer(service: BookService, book: Book) -> BookOut:
    return book_out(book, service.settings, await service.family(book))


@books.post(
    "",
    status_code=201,
    response_model=BookOut,
    summary="Turn an approved submission into a (DRAFT) book (BOOK_MANAGER and up)",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def create_book(
    body: BookCreate,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: BookServiceDep,
) -> JSONResponse:
    async def create() -> BookOut:
        return await answer(service, await service.create_book(principal, body))

    return await once.respond(body, create, status_code=201, headers=etag_of)


@books.patch(
    "/{book_id}",
    response_model=BookOut,
    summary="Edit a book's metadata or access level (BOOK_MANAGER and up; If-Match)",
    responses=CHANGE_ERRORS,
)
async def update_book(
    book_id: uuid.UUID,
    body: BookUpdate,
    principal: CurrentPrincipal,
    service: BookServiceDep,
    if_match: IfMatchRequired,
) -> JSONResponse:
    return with_etag(
        await answer(service, await service.update_book(principal, book_id, if_match, body))
    )


@books.post(
    "/{book_id}/cover",
    response_model=UploadTicket,
    summary="A presigned POST to upload a cover image (BOOK_MANAGER and up)",
    description="PNG, JPEG or WebP up to the size limit. The next publication checks the "
    "image (type, size, its first bytes) and publishes it beside the PDF.",
    responses=problem_responses(401, 403, 404, 413, 415, 422, 503),
)
async def cover_ticket(
    book_id: uuid.UUID,
    body: CoverUploadRequest,
    principal: CurrentPrincipal,
    service: BookServiceDep,
) -> UploadTicket:
    return UploadTicket.model_validate(await service.cover_ticket(principal, book_id, body))


@books.post(
    "/{book_id}/publish",
    response_model=BookOut,
    summary="Publish (CONTENT_ADMIN and up): copy the PDF to a new unguessable key",
    description="Each publication is a new edition under a new key, so links to one "
    "edition never serve another. `If-Match` is checked when sent.",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 503),
)
async def publish(
    book_id: uuid.UUID,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: BookServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    async def work() -> BookOut:
        return await answer(service, await service.publish(principal, book_id, if_match))

    return await once.respond(None, work, headers=etag_of)


@books.post(
    "/{book_id}/unpublish",
    response_model=BookOut,
    summary="Take a book out of the catalog at once (CONTENT_ADMIN and up)",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 503),
)
async def unpublish(
    book_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: BookServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    return with_etag(await answer(service, await service.unpublish(principal, book_id, if_match)))
