"""Submissions: a volunteer's story through its review (the rules: submissions.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.content.api.common import (
    CHANGE_ERRORS,
    IfMatchRequired,
    etag_of,
    submission_out,
    with_etag,
)
from services.content.dependencies import ReviewServiceDep, SubmissionServiceDep
from services.content.models import SubmissionStatus
from services.content.schemas import (
    ClaimRequest,
    ClearanceRequest,
    DerivationRequest,
    Language,
    ManuscriptLink,
    ReviewRequest,
    SubmissionCreate,
    SubmissionOut,
    SubmissionUpdate,
    TransitionOut,
    UploadRequest,
    UploadTicket,
)
from shared.http.pagination import Page
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, Cursor, OnceDep, PageSize

submissions = APIRouter(prefix="/v1/submissions", tags=["submissions"])
derivations = APIRouter(prefix="/v1/books", tags=["submissions"])


@derivations.post(
    "/{book_id}/derivations",
    status_code=201,
    response_model=SubmissionOut,
    summary="Start a translation or adaptation of a published book (VOLUNTEER and up)",
    description="Creates a DRAFT submission of the book's family, its metadata prefilled "
    "from the source, the source's credits carried over and you credited as translator "
    "or adapter; it goes through the same upload, submit, review and publish steps. A "
    "translation is into another language at the same reading level; an adaptation to "
    "another reading level in the same language. Books under a no-derivatives licence "
    "cannot be derived from (409).",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def start_derivation(
    book_id: uuid.UUID,
    body: DerivationRequest,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: SubmissionServiceDep,
) -> JSONResponse:
    async def create() -> SubmissionOut:
        return submission_out(
            await service.start_derivation(principal, book_id, body), service.settings
        )

    return await once.respond(body, create, status_code=201, headers=etag_of)


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
        return submission_out(await service.create_submission(principal, body), service.settings)

    return await once.respond(body, create, status_code=201, headers=etag_of)


@submissions.get(
    "",
    summary="Your submissions (volunteers) or the review queue (STORY_MANAGER and up)",
    description="Reviewers get the queue: flagged work first (its analysis found a warning "
    "or a severe finding: `flagged=true` lists only that, `false` only the rest), then the "
    "oldest submission first, by default the "
    "SUBMITTED and IN_REVIEW ones in the languages they review (all of them with "
    "`every_language=true`, or one with `language`); `overdue` marks those waiting "
    "longer than CONTENT_REVIEW_OVERDUE_DAYS. `mine=true` lists their own instead. "
    "Volunteers always get their own, newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_submissions(
    principal: CurrentPrincipal,
    service: SubmissionServiceDep,
    mine: bool = False,
    status: SubmissionStatus | None = None,
    language: Language | None = None,
    every_language: Annotated[
        bool,
        Query(description="Reviewers: the whole queue, not only the languages you review"),
    ] = False,
    age: Annotated[int | None, Query(ge=0, le=18)] = None,
    flagged: Annotated[
        bool | None, Query(description="Reviewers: only flagged work (true) or the rest")
    ] = None,
    cursor: Cursor = None,
    limit: PageSize = 20,
) -> Page[SubmissionOut]:
    rows, next_cursor = await service.list_submissions(
        principal,
        mine=mine,
        status=status,
        language=language,
        every_language=every_language,
        age=age,
        cursor=cursor,
        limit=limit,
        flagged=flagged,
    )
    return Page(items=[submission_out(s, service.settings) for s in rows], next_cursor=next_cursor)


@submissions.get(
    "/{submission_id}",
    response_model=SubmissionOut,
    summary="One submission (its author, or reviewers once submitted); ETag = version",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_submission(
    submission_id: uuid.UUID, principal: CurrentPrincipal, service: SubmissionServiceDep
) -> JSONResponse:
    return with_etag(
        submission_out(await service.visible_submission(principal, submission_id), service.settings)
    )


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
    if_match: IfMatchRequired,
) -> JSONResponse:
    return with_etag(
        submission_out(
            await service.update_submission(principal, submission_id, if_match, body),
            service.settings,
        )
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
    if_match: IfMatchRequired,
) -> JSONResponse:
    # The deep check first, outside the request's transaction (submissions.py).
    checked = await service.check_upload(principal, submission_id, if_match)

    async def work() -> SubmissionOut:
        return submission_out(
            await service.submit(principal, submission_id, if_match, checked), service.settings
        )

    return await once.respond(None, work, headers=etag_of)


@submissions.post(
    "/{submission_id}/claim",
    response_model=SubmissionOut,
    summary="Take a SUBMITTED submission into review: IN_REVIEW (STORY_MANAGER and up; If-Match)",
    description="The claim reserves the submission: only its reviewer decides it. Another "
    "reviewer's claim is a 409 `claimed-by-another`, unless `take_over` is sent: then the "
    "submission is yours, and its history says from whom you took it.",
    responses=CHANGE_ERRORS,
)
async def claim(
    submission_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: ReviewServiceDep,
    if_match: IfMatchRequired,
    body: ClaimRequest | None = None,
) -> JSONResponse:
    take_over = body.take_over if body is not None else False
    return with_etag(
        submission_out(
            await service.claim(principal, submission_id, if_match, take_over=take_over),
            service.settings,
        )
    )


@submissions.post(
    "/{submission_id}/review",
    response_model=SubmissionOut,
    summary="Approve, request changes or reject what you claimed (STORY_MANAGER and up; If-Match)",
    description="Only the reviewer who claimed the submission decides it: an unclaimed one "
    "is a 409 `not-claimed`, another reviewer's a 409 `claimed-by-another`.",
    responses=CHANGE_ERRORS,
)
async def review(
    submission_id: uuid.UUID,
    body: ReviewRequest,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: ReviewServiceDep,
    if_match: IfMatchRequired,
) -> JSONResponse:
    async def work() -> SubmissionOut:
        return submission_out(
            await service.review(principal, submission_id, if_match, body), service.settings
        )

    return await once.respond(body, work, headers=etag_of)


@submissions.post(
    "/{submission_id}/clearance",
    response_model=SubmissionOut,
    summary="Let a held submission go on to approval, saying why (CONTENT_ADMIN; If-Match)",
    description="A severe finding at submit (a child's phone number, email or address in "
    "the manuscript) holds the submission: its reviewer may request changes or reject it, "
    "but an approval is a 409 `held-for-clearance` until this clearance. The reason goes "
    "into the history with who and when; it holds for the manuscript that was read (new "
    "bytes are read afresh). A submission that is not held is a 409 `not-held`.",
    responses=CHANGE_ERRORS,
)
async def clearance(
    submission_id: uuid.UUID,
    body: ClearanceRequest,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: ReviewServiceDep,
    if_match: IfMatchRequired,
) -> JSONResponse:
    async def work() -> SubmissionOut:
        return submission_out(
            await service.clear_hold(principal, submission_id, if_match, body.reason),
            service.settings,
        )

    return await once.respond(body, work, headers=etag_of)


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
