"""The catalog: what readers see, and its cache of serialized public answers.

A published book and the public catalog pages are the same for every anonymous
reader: they are cached as the bytes the endpoint answered, keyed by the
parameters the endpoint reads (in one order: unknown ones are no new key), and
emptied over pub/sub whenever a book is published, changed or unpublished. The
cache is bounded by bytes and drops the least recently used page first.
`CatalogFastPath` answers hits before routing; the endpoints fill it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.content.editing import BOOK_MAKER, families_for, holds_now, iso, page_of
from services.content.families import READING_LEVELS, Family, families_of
from services.content.models import Book, BookStatus
from services.content.repository import CatalogQuery, ContentRepository
from shared.clients.access_client import AccessClient
from shared.clients.localcache import InvalidatedCache
from shared.contracts.decisions import Action
from shared.contracts.errors import NotFound
from shared.http.asgi import canonical_query
from shared.http.auth import Principal
from shared.http.pagination import decode_time_cursor

# One cache of serialized public answers (catalog pages and single books).
CatalogCache = InvalidatedCache[tuple[Any, ...], tuple[str, bytes]]
CATALOG_CHANNEL = "content:catalog"


# The query parameters of GET /v1/books and GET /opds/books (a test holds them to
# the endpoints' own): only these make a page, so only they make its key.
CATALOG_PARAMETERS = frozenset(
    {"language", "category", "age", "reading_level", "q", "family", "status", "cursor", "limit"}
)
OPDS_FEED_PARAMETERS = frozenset(
    {"language", "category", "age", "reading_level", "query", "cursor", "limit"}
)


def catalog_cache_key(query_string: bytes) -> tuple[str, bytes]:
    return ("page", canonical_query(query_string, CATALOG_PARAMETERS))


def cached_size(key: tuple[Any, ...], value: tuple[str, bytes]) -> int:
    """What an entry holds, near enough: its body, its tag and its key's parts."""
    tag, body = value
    return len(body) + len(tag) + sum(len(str(part)) for part in key) + 200


def public_headers(tag: str) -> list[tuple[bytes, bytes]]:
    # Clients and CDNs may keep a page but must revalidate: an unpublished book
    # leaves the catalog at once (a revalidation costs a 304 and no body).
    return [(b"etag", tag.encode()), (b"cache-control", b"public, no-cache")]


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/")


def etag_matches(tag: str, if_none_match: str | None) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): `W/"x"` matches `"x"`, as a
    cache or proxy that weakened the tag sends it back (#38)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return _opaque(tag) in {_opaque(t) for t in if_none_match.split(",")}


async def sees_every_book(access: AccessClient, viewer: Principal | None) -> bool:
    """Book managers see drafts and unpublished books: checked now, not at sign-in."""
    return await holds_now(access, viewer, Action.BOOK_EDIT, BOOK_MAKER)


def parse_catalog_cursor(cursor: str | None) -> tuple[str, str] | None:
    parsed = decode_time_cursor(cursor)
    return (parsed[0].isoformat(), str(parsed[1])) if parsed else None


@dataclass
class CatalogService:
    repository: ContentRepository
    access: AccessClient

    async def catalog_page(
        self, query: CatalogQuery
    ) -> tuple[list[Book], str | None, dict[uuid.UUID, Family]]:
        rows = await self.repository.catalog(query)
        order = "published_at" if query.status == BookStatus.PUBLISHED else "updated_at"
        page, cursor = page_of(rows, query.limit, lambda b: (iso(getattr(b, order)), b.id))
        return page, cursor, await families_for(self.repository, page)

    async def book_for(self, viewer: Principal | None, book_id: uuid.UUID) -> tuple[Book, Family]:
        book = await self.repository.book(book_id)
        if book is None or (
            book.status != BookStatus.PUBLISHED and not await sees_every_book(self.access, viewer)
        ):
            raise NotFound("No such book.")
        return book, (await families_for(self.repository, [book]))[book.family_id]

    async def family(
        self, family_id: uuid.UUID, *, every_version: bool
    ) -> tuple[list[Book], Family]:
        """A family's versions by language and level: published ones, or all for managers."""
        members = await self.repository.family_members([family_id])
        versions = [b for b in members if every_version or b.status == BookStatus.PUBLISHED]
        if not versions:
            raise NotFound("No such story family.")
        versions.sort(
            key=lambda b: (
                b.language,
                READING_LEVELS.index(b.reading_level),
                b.status != BookStatus.PUBLISHED,
                str(b.id),
            )
        )
        return versions, families_of(members)[family_id]
