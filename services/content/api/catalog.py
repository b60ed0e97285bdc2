"""The catalog: published books for everyone, every book for book managers (the
rules: catalog.py); a public page is cached as the bytes answered."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.content.api.common import (
    NOT_MODIFIED,
    IfNoneMatch,
    book_out,
    book_page,
    book_page_key,
    catalog_answer,
    tagged,
)
from services.content.catalog import catalog_cache_key, parse_catalog_cursor, sees_every_book
from services.content.components import ComponentsDep, app_components
from services.content.dependencies import catalog_service
from services.content.models import BookStatus
from services.content.repository import CatalogQuery
from services.content.schemas import (
    BookOut,
    BookStatusFilter,
    Category,
    FamilyOut,
    Language,
    ReadingLevel,
)
from shared.clients.db import unit_of_work
from shared.contracts.errors import Forbidden, Unauthorized
from shared.http.pagination import MAX_PAGE_SIZE, Page
from shared.http.problems import problem_responses
from shared.resources import resources_of
from shared.service.deps import Cursor, OptionalPrincipal

catalog = APIRouter(prefix="/v1/books", tags=["books"])


@catalog.get(
    "",
    response_model=Page[BookOut],
    summary="The catalog: published books (public); managers may filter by status",
    description="Newest publication first, stable across pages. `q` searches titles and "
    "summaries. Each book carries its attribution and its family's other published "
    "versions (language and level). Answers carry an ETag: send it as If-None-Match to "
    "get a 304 when nothing changed. `status` other than PUBLISHED needs BOOK_MANAGER or "
    "higher.",
    responses={**NOT_MODIFIED, **problem_responses(401, 403, 422)},
)
async def list_books(
    request: Request,
    viewer: OptionalPrincipal,
    language: Language | None = None,
    category: Category | None = None,
    age: Annotated[int | None, Query(ge=0, le=18)] = None,
    reading_level: ReadingLevel | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    family: Annotated[
        uuid.UUID | None, Query(description="Only the versions of one story family")
    ] = None,
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
        family=family,
        status=status,
        after=parse_catalog_cursor(cursor),
        limit=limit,
    )

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            service = catalog_service(resources, session)
            rows, next_cursor, families = await service.catalog_page(query)
            page = Page[BookOut](
                items=[book_out(b, components.settings, families[b.family_id]) for b in rows],
                next_cursor=next_cursor,
            )
        return tagged(page)

    # The public catalog is the same for everyone: cached by the raw query
    # string, which CatalogFastPath answers from before routing next time.
    key = catalog_cache_key(request.scope["query_string"])
    return await catalog_answer(
        components.catalog,
        key,
        load,
        public=status == BookStatus.PUBLISHED,
        if_none_match=if_none_match,
    )


@catalog.get(
    "/{book_id}",
    response_model=BookOut,
    summary="One book: published ones for everyone, any for BOOK_MANAGER and up",
    responses={**NOT_MODIFIED, **problem_responses(401, 404, 422)},
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
            found, family = await catalog_service(resources, session).book_for(viewer, book_id)
            return book_page(found, components.settings, family)

    return await catalog_answer(
        components.catalog,
        book_page_key(book_id),
        load,
        public=not manager,
        if_none_match=if_none_match,
    )


families = APIRouter(prefix="/v1/families", tags=["books"])


@families.get(
    "/{family_id}",
    response_model=FamilyOut,
    summary="A story family: the original and its translations and adaptations",
    description="Published versions for everyone, by language then reading level; every "
    "version (drafts, unpublished, superseded) for BOOK_MANAGER and up.",
    responses={**NOT_MODIFIED, **problem_responses(401, 404, 422)},
)
async def get_family(
    family_id: uuid.UUID,
    request: Request,
    viewer: OptionalPrincipal,
    components: ComponentsDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    resources = resources_of(request.app)
    manager = await sees_every_book(resources.access, viewer)

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            versions, family = await catalog_service(resources, session).family(
                family_id, every_version=manager
            )
            original = next((b.id for b in versions if b.derived_from is None), None)
            return tagged(
                FamilyOut(
                    family_id=family_id,
                    original_id=original,
                    versions=[book_out(b, components.settings, family) for b in versions],
                )
            )

    return await catalog_answer(
        components.catalog,
        ("family", family_id),
        load,
        public=not manager,
        if_none_match=if_none_match,
    )
