"""HTTP endpoints of the content service (thin: the rules live in submissions.py,
books.py and catalog.py)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from services.content.catalog import (
    catalog_cache_key,
    etag_matches,
    parse_catalog_cursor,
    public_headers,
    sees_every_book,
)
from services.content.components import ComponentsDep, app_components
from services.content.dependencies import BookServiceDep, SubmissionServiceDep, catalog_service
from services.content.models import Book, BookStatus, Submission, SubmissionStatus
from services.content.repository import CatalogQuery
from services.content.schemas import (
    BookCreate,
    BookOut,
    BookStatusFilter,
    BookUpdate,
    Category,
    CoverUploadRequest,
    Language,
    ManuscriptLink,
    ReadingLevel,
    ReviewRequest,
    SubmissionCreate,
    SubmissionOut,
    SubmissionUpdate,
    TransitionOut,
    UploadRequest,
    UploadTicket,
)
from services.content.service import (
    etag,
)
from services.content.settings import ContentSettings
from shared.app import resources_of
from shared.auth import CurrentPrincipal, OptionalPrincipal
from shared.db import unit_of_work
from shared.errors import Forbidden, Unauthorized
from shared.idempotency import OnceDep
from shared.pagination import MAX_PAGE_SIZE, Page
from shared.problems import problem_responses

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=500)]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The version you read (the ETag); required to change the resource",
        max_length=100,
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1000)]

submissions = APIRouter(prefix="/v1/submissions", tags=["submissions"])
books = APIRouter(prefix="/v1/books", tags=["books"])

CHANGE_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)


def _with_etag(model: SubmissionOut | BookOut) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), headers={"ETag": etag(model.version)})


def _etag_of(payload: Any) -> dict[str, str]:
    return {"ETag": etag(int(payload["version"]))}


def _submission(row: Submission) -> SubmissionOut:
    return SubmissionOut.model_validate(row)


def _book(row: Book, settings: ContentSettings) -> BookOut:
    return BookOut.of(row, settings.published_assets_url)


# --- submissions ---------------------------------------------------------------------


@submissions.post(
    "",
    status_code=201,
    response_model=SubmissionOut,
    summary="Start a story (VOLUNTEER and up); it begins as a DRAFT",
    responses=problem_responses(401, 403, 422, 503),
)
async def create_submission(
    body: SubmissionCreate,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: SubmissionServiceDep,
) -> JSONResponse:
    async def create() -> SubmissionOut:
        return _submission(await service.create_submission(principal, body))

    return await once.respond(body, create, status_code=201, headers=_etag_of)


@submissions.get(
    "",
    summary="Your submissions (volunteers) or the review queue (STORY_MANAGER and up)",
    description="Reviewers get the queue, oldest submission first, by default the "
    "SUBMITTED and IN_REVIEW ones; `mine=true` lists their own instead. Volunteers "
    "always get their own, newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_submissions(
    principal: CurrentPrincipal,
    service: SubmissionServiceDep,
    mine: bool = False,
    status: SubmissionStatus | None = None,
    language: Language | None = None,
    age: Annotated[int | None, Query(ge=0, le=18)] = None,
    cursor: Cursor = None,
    limit: PageSize = 20,
) -> Page[SubmissionOut]:
    rows, next_cursor = await service.list_submissions(
        principal,
        mine=mine,
        status=status,
        language=language,
        age=age,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[_submission(s) for s in rows], next_cursor=next_cursor)


@submissions.get(
    "/{submission_id}",
    response_model=SubmissionOut,
    summary="One submission (its author, or reviewers once submitted); ETag = version",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_submission(
    submission_id: uuid.UUID, principal: CurrentPrincipal, service: SubmissionServiceDep
) -> JSONResponse:
    return _with_etag(_submission(await service.visible_submission(principal, submission_id)))


@submissions.patch(
    "/{submission_id}",
    response_model=SubmissionOut,
    summary="Edit a DRAFT or CHANGES_REQUESTED submission (its author; If-Match)",
    responses=CHANGE_ERRORS,
)
async def update_submission(
    submission_id: uuid.UUID,
    body: SubmissionUpdate,
    principal: CurrentPrincipal,
    service: SubmissionServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    return _with_etag(
        _submission(await service.update_submission(principal, submission_id, if_match, body))
    )


@submissions.post(
    "/{submission_id}/upload",
    response_model=UploadTicket,
    summary="A presigned POST to upload the manuscript PDF straight to S3 (its author)",
    description="The policy fixes the object key, requires `Content-Type: application/pdf` "
    "and limits the size. Send the returned `fields`, then the file as `file`, as a "
    "multipart form to `url`. A later ticket replaces an earlier one.",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
)
async def upload_ticket(
    submission_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: SubmissionServiceDep,
    body: UploadRequest | None = None,
) -> UploadTicket:
    form = await service.upload_ticket(principal, submission_id, body or UploadRequest())
    return UploadTicket.model_validate(form)


@submissions.post(
    "/{submission_id}/submit",
    response_model=SubmissionOut,
    summary="Send for review, once the uploaded PDF passes its checks (its author; If-Match)",
    description="The uploaded object must exist, be non-empty, within the size limit, "
    "stored as application/pdf and start with `%PDF-`; otherwise a 422 says which "
    "check failed and the upload is discarded.",
    responses=CHANGE_ERRORS,
)
async def submit(
    submission_id: uuid.UUID,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: SubmissionServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    async def work() -> SubmissionOut:
        return _submission(await service.submit(principal, submission_id, if_match))

    return await once.respond(None, work, headers=_etag_of)


@submissions.post(
    "/{submission_id}/claim",
    response_model=SubmissionOut,
    summary="Take a SUBMITTED submission into review: IN_REVIEW (STORY_MANAGER and up; If-Match)",
    responses=CHANGE_ERRORS,
)
async def claim(
    submission_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: SubmissionServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    return _with_etag(_submission(await service.claim(principal, submission_id, if_match)))


@submissions.post(
    "/{submission_id}/review",
    response_model=SubmissionOut,
    summary="Approve, request changes or reject (STORY_MANAGER and up, not the author; If-Match)",
    responses=CHANGE_ERRORS,
)
async def review(
    submission_id: uuid.UUID,
    body: ReviewRequest,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: SubmissionServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    async def work() -> SubmissionOut:
        return _submission(await service.review(principal, submission_id, if_match, body))

    return await once.respond(body, work, headers=_etag_of)


@submissions.get(
    "/{submission_id}/history",
    summary="Every transition: who, from what, to what, when, with what notes",
    responses=problem_responses(401, 403, 404, 422),
)
async def history(
    submission_id: uuid.UUID, principal: CurrentPrincipal, service: SubmissionServiceDep
) -> list[TransitionOut]:
    return [
        TransitionOut.model_validate(t) for t in await service.history(principal, submission_id)
    ]


@submissions.get(
    "/{submission_id}/manuscript",
    summary="A short-lived download link for the verified manuscript (author, reviewers)",
    responses=problem_responses(401, 403, 404, 422),
)
async def manuscript(
    submission_id: uuid.UUID, principal: CurrentPrincipal, service: SubmissionServiceDep
) -> ManuscriptLink:
    url, expires_at = await service.manuscript_link(principal, submission_id)
    return ManuscriptLink(url=url, expires_at=expires_at)


# --- books ---------------------------------------------------------------------------


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
        return _book(await service.create_book(principal, body), service.settings)

    return await once.respond(body, create, status_code=201, headers=_etag_of)


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
    if_match: IfMatch = None,
) -> JSONResponse:
    return _with_etag(
        _book(await service.update_book(principal, book_id, if_match, body), service.settings)
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
        return _book(await service.publish(principal, book_id, if_match), service.settings)

    return await once.respond(None, work, headers=_etag_of)


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
    return _with_etag(
        _book(await service.unpublish(principal, book_id, if_match), service.settings)
    )


def _body_etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def _conditional(body: bytes, tag: str, if_none_match: str | None, *, public: bool) -> Response:
    if public:
        headers = {k.decode(): v.decode() for k, v in public_headers(tag)}
    else:
        headers = {"ETag": tag, "Cache-Control": "private, no-store"}
    if etag_matches(tag, if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@books.get(
    "",
    response_model=Page[BookOut],
    summary="The catalog: published books (public); managers may filter by status",
    description="Newest publication first, stable across pages. `q` searches titles and "
    "summaries. Answers carry an ETag: send it as If-None-Match to get a 304 when "
    "nothing changed. `status` other than PUBLISHED needs BOOK_MANAGER or higher.",
    responses=problem_responses(401, 403, 422),
)
async def list_books(
    request: Request,
    viewer: OptionalPrincipal,
    language: Language | None = None,
    category: Category | None = None,
    age: Annotated[int | None, Query(ge=0, le=18)] = None,
    reading_level: ReadingLevel | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    status: BookStatusFilter | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    if_none_match: IfNoneMatch = None,
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)
    status = status or "PUBLISHED"
    if status != BookStatus.PUBLISHED and not await sees_every_book(resources.access, viewer):
        if viewer is None:
            raise Unauthorized("Sign in as a book manager to see unpublished books.")
        raise Forbidden("Only book managers see unpublished books.")
    text = " ".join(q.split()).lower() if q else None
    query = CatalogQuery(
        language=language,
        category=category,
        age=age,
        reading_level=reading_level,
        text=text or None,
        status=status,
        after=parse_catalog_cursor(cursor),
        limit=limit,
    )

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            rows, next_cursor = await catalog_service(resources, session).catalog_page(query)
            page = Page[BookOut](
                items=[_book(b, components.settings) for b in rows], next_cursor=next_cursor
            )
        body = page.model_dump_json().encode()
        return _body_etag(body), body

    public = status == BookStatus.PUBLISHED
    # The public catalog is the same for everyone: cached by the raw query
    # string, which CatalogFastPath answers from before routing next time.
    key = catalog_cache_key(request.scope["query_string"])
    tag, body = await (components.catalog.get_or_load(key, load) if public else load())
    return _conditional(body, tag, if_none_match, public=public)


@books.get(
    "/{book_id}",
    response_model=BookOut,
    summary="One book: published ones for everyone, any for BOOK_MANAGER and up",
    responses=problem_responses(401, 404, 422),
)
async def get_book(
    book_id: uuid.UUID,
    request: Request,
    viewer: OptionalPrincipal,
    components: ComponentsDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    resources = resources_of(request.app)
    manager = await sees_every_book(resources.access, viewer)

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            found = await catalog_service(resources, session).book_for(viewer, book_id)
            book = _book(found, components.settings)
        body = book.model_dump_json().encode()
        return _body_etag(body), body

    tag, body = await (
        load() if manager else components.catalog.get_or_load(("book", book_id), load)
    )
    return _conditional(body, tag, if_none_match, public=not manager)


ROUTERS = [books, submissions]
