"""The catalog as OPDS 2.0 feeds for reading apps (#20; the documents: opds.py).
Public, and cached and emptied with the catalog: a publication or change reaches
the feeds as it reaches `GET /v1/books`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.content.api.common import (
    NOT_MODIFIED,
    IfNoneMatch,
    body_etag,
    book_out,
    catalog_answer,
    conditional,
)
from services.content.catalog import OPDS_FEED_PARAMETERS, parse_catalog_cursor
from services.content.components import app_components
from services.content.covers import jpeg_rendition
from services.content.dependencies import catalog_service
from services.content.editing import families_for
from services.content.most_read import MetricsUnavailable
from services.content.next_books import NextBooksUnavailable
from services.content.opds import (
    AGES,
    AUTHENTICATION_TYPE,
    FEED_TYPE,
    JPEG,
    PUBLICATION_TYPE,
    SVG,
    Origins,
    authentication_document,
    publication,
    publications_feed,
    root_feed,
    title_card,
    with_recommended,
)
from services.content.repository import CatalogQuery
from services.content.schemas import Category, Language, ReadingLevel
from shared.clients.db import unit_of_work
from shared.http.asgi import canonical_query
from shared.http.pagination import MAX_PAGE_SIZE
from shared.http.problems import problem_responses
from shared.resources import resources_of
from shared.service.deps import Cursor, OptionalPrincipal

opds = APIRouter(prefix="/opds", tags=["opds"])

NEWEST = 10
# The root's groups per language: the first this many languages, this many books each.
LANGUAGE_GROUPS, GROUP_SIZE = 20, 5
log = structlog.get_logger(__name__)


def origins(request: Request) -> Origins:
    """The reading app's view of the services: this request's origin, unless the
    settings name another for delivery or access (opds.py)."""
    settings = app_components(request.app).settings
    # The host lower-cased: one origin, one set of cached feeds, however its Host
    # header spells it.
    base = request.base_url
    here = str(base.replace(netloc=base.netloc.lower())).rstrip("/")
    return Origins(
        catalog=here,
        delivery=settings.opds_delivery_url or here,
        access=settings.opds_access_url or here,
    )


def _tagged(document: dict[str, Any]) -> tuple[str, bytes]:
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return body_etag(body), body


@opds.get(
    "",
    summary="OPDS 2.0: the root navigation feed (every book, by language, by level; new)",
    description="Signed in (a reader's bearer token), the feed starts with the reader's "
    'own "Recommended for you" group (#42), and is private to them; a token that is not '
    "valid is a 401.",
    responses={**NOT_MODIFIED, **problem_responses(401), 200: {"content": {FEED_TYPE: {}}}},
)
async def opds_root(
    request: Request, viewer: OptionalPrincipal, if_none_match: IfNoneMatch = None
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)
    settings, at = components.settings, origins(request)

    async def load() -> tuple[str, bytes]:
        try:  # before the transaction: no connection held while metrics answers
            popular_ids: list[uuid.UUID] | None = await components.most_read.ids(limit=NEWEST)
        except MetricsUnavailable:
            log.info("the OPDS root goes without its most read group this time")
            popular_ids = None
        async with unit_of_work(resources.session_factory) as session:
            service = catalog_service(resources, session)
            rows, _, families = await service.catalog_page(CatalogQuery(limit=NEWEST))
            counts = await service.repository.published_facets()
            per_language = {}
            for language in list(counts["language"])[:LANGUAGE_GROUPS]:
                found, _, more = await service.catalog_page(
                    CatalogQuery(language=language, limit=GROUP_SIZE)
                )
                per_language[language] = (found, more)
            popular = await service.repository.published_books(popular_ids or [])
            popular_families = await families_for(service.repository, popular)

        def out(books: list[Any], known: dict[uuid.UUID, Any]) -> list[Any]:
            return [book_out(b, settings, known[b.family_id]) for b in books]

        return _tagged(
            root_feed(
                out(rows, families),
                counts,
                at,
                most_read=out(popular, popular_families) if popular_ids is not None else None,
                by_language={lang: out(b, f) for lang, (b, f) in per_language.items()},
            )
        )

    if viewer is None or viewer.kind != "user":
        shared_root = await catalog_answer(
            components.catalog,
            ("opds", at, "root"),
            load,
            public=True,
            if_none_match=if_none_match,
            media_type=FEED_TYPE,
        )
        # A cache in between keeps it apart from a signed-in reader's own root.
        shared_root.headers["Vary"] = "Authorization"
        return shared_root
    # A reader's own root: the shared one, their next books first, kept by nobody.
    _, shared = await components.catalog.get_or_load(("opds", at, "root"), load)
    document = json.loads(shared)
    try:  # no connection held while access answers
        picked = await components.next_books.ids(request.headers["authorization"])
    except NextBooksUnavailable:
        log.info("the OPDS root goes without the reader's recommendations this time")
        picked = []
    if picked:
        async with unit_of_work(resources.session_factory) as session:
            repository = catalog_service(resources, session).repository
            books = await repository.published_books(picked)  # best first, as access said
            families = await families_for(repository, books)
        recommended = [book_out(b, settings, families[b.family_id]) for b in books]
        document = with_recommended(document, recommended, at)
    tag, body = _tagged(document)
    return conditional(body, tag, if_none_match, public=False, media_type=FEED_TYPE)


@opds.get(
    "/books",
    summary="OPDS 2.0: published books, newest first, with facets and search",
    description="Facets: `language`, `reading_level`, `category`, `age` (a child's age). "
    "`query` searches titles and summaries (the feeds' search template). Cursor pages "
    "(`next` link).",
    responses={**NOT_MODIFIED, **problem_responses(422), 200: {"content": {FEED_TYPE: {}}}},
)
async def opds_books(
    request: Request,
    language: Language | None = None,
    category: Category | None = None,
    age: Annotated[int | None, Query(ge=0, le=18)] = None,
    reading_level: ReadingLevel | None = None,
    query: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    if_none_match: IfNoneMatch = None,
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)
    settings, at = components.settings, origins(request)
    text = " ".join(query.split()).lower() if query else None
    wanted = CatalogQuery(
        language=language,
        category=category,
        age=age,
        reading_level=reading_level,
        text=text or None,
        after=parse_catalog_cursor(cursor),
        limit=limit,
    )
    active = {
        "language": language,
        "reading_level": reading_level,
        "category": category,
        "age": age,
        "query": text,
        "cursor": cursor,
    }

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            service = catalog_service(resources, session)
            rows, next_cursor, families = await service.catalog_page(wanted)
            counts = await service.repository.published_facets(wanted, ages=AGES)
        books = [book_out(b, settings, families[b.family_id]) for b in rows]
        title = "Search: " + text if text else "Books"
        return _tagged(
            publications_feed(
                books,
                title=title,
                active=active,
                next_cursor=next_cursor,
                limit=limit,
                counts=counts,
                at=at,
            )
        )

    return await catalog_answer(
        components.catalog,
        ("opds", at, canonical_query(request.scope["query_string"], OPDS_FEED_PARAMETERS)),
        load,
        public=True,
        if_none_match=if_none_match,
        media_type=FEED_TYPE,
    )


@opds.get(
    "/books/{book_id}",
    summary="OPDS 2.0: one published book, with its acquisition link",
    responses={
        **NOT_MODIFIED,
        **problem_responses(404, 422),
        200: {"content": {PUBLICATION_TYPE: {}}},
    },
)
async def opds_publication(
    book_id: uuid.UUID,
    request: Request,
    if_none_match: IfNoneMatch = None,
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)
    settings, at = components.settings, origins(request)

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            # Published books only, for everyone: the feeds are public.
            found, family = await catalog_service(resources, session).book_for(None, book_id)
        book = book_out(found, settings, family)
        return _tagged(publication(book, at))

    return await catalog_answer(
        components.catalog,
        ("opds", at, "book", book_id),
        load,
        public=True,
        if_none_match=if_none_match,
        media_type=PUBLICATION_TYPE,
    )


@opds.get(
    "/authentication",
    summary="OPDS Authentication 1.0: how a reading app signs in (OAuth password grant)",
    responses={200: {"content": {AUTHENTICATION_TYPE: {}}}},
)
async def opds_authentication(request: Request) -> Response:
    return JSONResponse(authentication_document(origins(request)), media_type=AUTHENTICATION_TYPE)


@opds.get(
    "/books/{book_id}/cover.svg",
    summary="A drawn title card: the image of a publication without a cover yet",
    responses={**NOT_MODIFIED, **problem_responses(404, 422), 200: {"content": {SVG: {}}}},
)
async def opds_title_card(
    book_id: uuid.UUID, request: Request, if_none_match: IfNoneMatch = None
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            found, _ = await catalog_service(resources, session).book_for(None, book_id)
        body = title_card(found.title, found.language).encode()
        return body_etag(body), body

    return await catalog_answer(
        components.catalog,
        ("opds", "card", book_id),
        load,
        public=True,
        if_none_match=if_none_match,
        media_type=SVG,
    )


@opds.get(
    "/books/{book_id}/cover.jpg",
    summary="A publication's picture as a JPEG: its cover, else its first page, else a card",
    description="What every reading app can show (the feeds offer it on every "
    "publication): the cover, or the first page once the book is processed, as a JPEG "
    "at most 600 x 900; a drawn title card before either exists.",
    responses={**NOT_MODIFIED, **problem_responses(404, 422), 200: {"content": {JPEG: {}}}},
)
async def opds_cover_jpeg(
    book_id: uuid.UUID, request: Request, if_none_match: IfNoneMatch = None
) -> Response:
    resources, components = resources_of(request.app), app_components(request.app)

    async def load() -> tuple[str, bytes]:
        async with unit_of_work(resources.session_factory) as session:
            found, _ = await catalog_service(resources, session).book_for(None, book_id)
        key = found.cover_key or (found.thumbnail_keys or {}).get("600")
        picture = (
            await components.storage.public_picture(
                key, max_bytes=components.settings.cover_max_bytes
            )
            if key
            else None
        )
        body = await asyncio.to_thread(
            jpeg_rendition, picture.data if picture else None, found.title
        )
        return body_etag(body), body

    return await catalog_answer(
        components.catalog,
        ("opds", "cover.jpg", book_id),
        load,
        public=True,
        if_none_match=if_none_match,
        media_type=JPEG,
    )
