"""The catalog as OPDS 2.0 feeds (#20), for reading apps: a root navigation feed,
publication feeds with facets, cursor pages and search, and one document per
publication. Pure functions from the catalog's own answers (BookOut) to JSON.

Links are absolute (the format asks it of `self`), on the origin the request
came to (the load balancer routes `/opds` here and `/v1/deliveries` to delivery),
except where `CONTENT_OPDS_DELIVERY_URL` / `CONTENT_OPDS_ACCESS_URL` name another
origin for delivery or access (the embedded run, compose). Since the origin comes
from the request, it is part of every cache key: an odd Host header gets odd
links, for that request alone. A free book's acquisition is open access; an
entitled one's needs a sign-in, described by the OPDS Authentication document
that every feed links to.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from services.content.families import READING_LEVELS
from services.content.schemas import BookOut

FEED_TYPE = "application/opds+json"
PUBLICATION_TYPE = "application/opds-publication+json"
AUTHENTICATION_TYPE = "application/opds-authentication+json"
AUTHENTICATION_PATH = "/opds/authentication"
SVG = "image/svg+xml"
JPEG = "image/jpeg"
PROGRESSION_TYPE = "application/vnd.readium.progression+json"
# The rel reading apps follow to a publication's progression (OPDS Progression; the
# rel Cantook's apps and Thorium use), answered by delivery (#38).
PROGRESSION_REL = "http://www.cantook.com/api/progression"
# A stored image's type, by the extension its key was given at upload or processing.
IMAGE_TYPES = {"png": "image/png", "jpg": JPEG, "jpeg": JPEG, "webp": "image/webp"}
ROOT_PATH = "/opds"
BOOKS_PATH = "/opds/books"
SUBJECT_SCHEME = "https://stories.example/categories"
LEVEL_SCHEME = "https://stories.example/reading-levels"
# The age facet's buckets (a child's age); a bucket no book suits is not offered.
AGES = (3, 5, 7, 9, 11)
# Credit roles that have a contributor key of their own in the format.
CONTRIBUTOR_KEYS = {"author", "illustrator", "translator", "editor", "narrator"}


@dataclass(frozen=True)
class Origins:
    """Where each service is reached, as the reading app sees it."""

    catalog: str
    delivery: str
    access: str

    def feed(self, **query: Any) -> str:
        wanted = {k: v for k, v in query.items() if v not in (None, "")}
        books = self.catalog + BOOKS_PATH
        return f"{books}?{urlencode(wanted)}" if wanted else books


def _link(href: str, rel: str | None = None, type_: str = FEED_TYPE, **more: Any) -> dict[str, Any]:
    link: dict[str, Any] = {"href": href, "type": type_}
    if rel is not None:
        link["rel"] = rel
    link.update(more)
    return link


def common_links(self_href: str, at: Origins) -> list[dict[str, Any]]:
    return [
        _link(self_href, "self"),
        _link(at.catalog + ROOT_PATH, "start"),
        _link(
            at.catalog + BOOKS_PATH + "{?query,language,reading_level,category,age}",
            "search",
            templated=True,
            title="Search titles and summaries",
        ),
        _link(
            at.catalog + AUTHENTICATION_PATH,
            "http://opds-spec.org/auth/document",
            AUTHENTICATION_TYPE,
        ),
    ]


def publication(book: BookOut, at: Origins) -> dict[str, Any]:
    """One book as an OPDS 2.0 publication."""
    metadata: dict[str, Any] = {
        "@type": "http://schema.org/Book",
        "identifier": f"urn:uuid:{book.id}",
        "title": book.title,
        "language": book.language,
        "description": book.summary,
        "subject": [
            {"name": book.category, "code": book.category, "scheme": SUBJECT_SCHEME},
            {"name": book.reading_level, "code": book.reading_level, "scheme": LEVEL_SCHEME},
        ],
        "publisher": [{"name": "1001 Stories"}],
        # Not in the core vocabulary; reading apps show what they know.
        "schema:typicalAgeRange": f"{book.age_min}-{book.age_max}",
        "rights": book.licence,
        "credits": book.attribution,
    }
    if book.published_at is not None:
        metadata["published"] = book.published_at.date().isoformat()
        metadata["modified"] = book.published_at.isoformat().replace("+00:00", "Z")
    if book.page_count:
        metadata["numberOfPages"] = book.page_count
    for credit in book.credits:
        key = credit.role if credit.role in CONTRIBUTOR_KEYS else "contributor"
        metadata.setdefault(key, []).append({"name": credit.name})
    acquire = f"{at.delivery}/v1/deliveries/{book.id}/acquire"
    if book.access == "free":
        acquisition = _link(
            acquire, "http://opds-spec.org/acquisition/open-access", "application/pdf"
        )
    else:
        acquisition = _link(
            acquire,
            "http://opds-spec.org/acquisition",
            "application/pdf",
            properties={
                "authenticate": {
                    "href": at.catalog + AUTHENTICATION_PATH,
                    "type": AUTHENTICATION_TYPE,
                }
            },
        )
    links = [
        _link(f"{at.catalog}{BOOKS_PATH}/{book.id}", "self", PUBLICATION_TYPE),
        acquisition,
        # Where a reading app keeps its place in the book (#38: nothing linked it).
        _link(f"{at.delivery}/v1/reading/{book.id}/progression", PROGRESSION_REL, PROGRESSION_TYPE),
    ]
    images: list[dict[str, Any]] = []
    if book.cover_url:
        # Announced as what it is (#38: every cover was "image/png").
        images.append({"href": book.cover_url, "type": image_type(book.cover_url), "rel": "cover"})
    for width, url in sorted(book.thumbnails.items(), key=lambda item: int(item[0])):
        images.append({"href": url, "type": image_type(url), "width": int(width)})
    # Always a JPEG, which every reading app and validator takes (the format asks for
    # a JPEG, PNG, GIF or AVIF): the cover, else the first page, else a drawn title
    # card, as a JPEG rendition (api/opds.py).
    images.append({"href": f"{at.catalog}{BOOKS_PATH}/{book.id}/cover.jpg", "type": JPEG})
    return {"metadata": metadata, "links": links, "images": images}


def image_type(url: str) -> str:
    extension = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return IMAGE_TYPES.get(extension, "application/octet-stream")


def facets(
    counts: dict[str, dict[str, int]], active: dict[str, Any], at: Origins
) -> list[dict[str, Any]]:
    """Each facet's values that match something in the current filter, each with how
    many books it would show (#38: values that matched nothing were offered, and the
    counts ignored the filter); a facet with fewer than two such values is left out."""

    def value_link(name: str, value: Any, title: str, count: int) -> dict[str, Any]:
        query = {**active, name: value, "cursor": None}
        link = _link(at.feed(**query), None, FEED_TYPE, title=title)
        link["properties"] = {"numberOfItems": count}
        if active.get(name) == value:
            link["rel"] = "self"
        return link

    levels = counts.get("reading_level", {})
    ages = counts.get("age", {})
    offered = [
        (
            "Language",
            [value_link("language", v, v, n) for v, n in counts["language"].items() if n],
        ),
        (
            "Reading level",
            [
                value_link("reading_level", level, level, levels[level])
                for level in READING_LEVELS
                if levels.get(level)
            ],
        ),
        (
            "Category",
            [value_link("category", v, v, n) for v, n in counts["category"].items() if n],
        ),
        (
            "Age",
            [
                value_link("age", age, f"age {age}", ages[str(age)])
                for age in AGES
                if ages.get(str(age))
            ],
        ),
    ]
    # A facet of one value is no choice (and the format asks for two or more).
    return [
        {"metadata": {"title": title}, "links": links} for title, links in offered if len(links) > 1
    ]


def publications_feed(
    books: list[BookOut],
    *,
    title: str,
    active: dict[str, Any],
    next_cursor: str | None,
    limit: int,
    counts: dict[str, dict[str, int]],
    at: Origins,
) -> dict[str, Any]:
    links = common_links(at.feed(**active, limit=limit), at)
    if next_cursor is not None:
        links.append(_link(at.feed(**{**active, "cursor": next_cursor}, limit=limit), "next"))
    feed: dict[str, Any] = {
        "metadata": {"title": title, "itemsPerPage": limit},
        "links": links,
    }
    chosen = facets(counts, {k: v for k, v in active.items() if k != "cursor"}, at)
    if chosen:
        feed["facets"] = chosen
    if books:
        feed["publications"] = [publication(book, at) for book in books]
    else:
        # Nothing matches: a feed that says where to go instead, not an empty list
        # of publications, which the format does not allow (#38).
        feed["navigation"] = [
            _link(at.feed(), "start", title="All books"),
            _link(at.catalog + ROOT_PATH, "up", title="The library"),
        ]
    return feed


def _group(title: str, href: str, books: list[BookOut], at: Origins) -> dict[str, Any]:
    return {
        "metadata": {"title": title, "numberOfItems": len(books)},
        "links": [_link(href, "self", title=title)],
        "publications": [publication(b, at) for b in books],
    }


def root_feed(
    newest: list[BookOut],
    counts: dict[str, dict[str, int]],
    at: Origins,
    *,
    most_read: list[BookOut] | None = None,
    by_language: dict[str, list[BookOut]] | None = None,
) -> dict[str, Any]:
    """The start: where to go (every book, each language, each level), and groups:
    the newest books, the most read lately (when metrics can say), and the newest
    in each language."""
    navigation = [_link(at.feed(), "subsection", title="All books")]
    navigation += [
        _link(at.feed(language=language), "subsection", title=f"Books in {language}")
        for language in counts["language"]
    ]
    navigation += [
        _link(at.feed(reading_level=level), "subsection", title=f"Reading level: {level}")
        for level in READING_LEVELS
    ]
    groups = []
    if newest:
        groups.append(_group("New", at.feed(), newest, at))
    if most_read:
        groups.append(_group("Most read", at.feed(), most_read, at))
    for language, books in (by_language or {}).items():
        if books:
            groups.append(_group(f"In {language}", at.feed(language=language), books, at))
    return {
        "metadata": {"title": "1001 Stories"},
        "links": common_links(at.catalog + ROOT_PATH, at),
        "navigation": navigation,
        "groups": groups,
    }


def with_recommended(document: dict[str, Any], books: list[BookOut], at: Origins) -> dict[str, Any]:
    """The root for one signed-in reader: their next books (#42) as its first group."""
    if not books:
        return document
    group = _group("Recommended for you", at.feed(), books, at)
    return {**document, "groups": [group, *document["groups"]]}


def authentication_document(at: Origins) -> dict[str, Any]:
    """OPDS Authentication 1.0: sign in with the platform's own accounts (the OAuth
    password grant at access), then send the bearer token."""
    return {
        "id": "urn:uuid:9a3b6c1e-1001-4c5e-9d61-5f0a3d1b0001",
        "title": "1001 Stories",
        "description": "Sign in with your 1001 Stories account to read the books you were given.",
        "authentication": [
            {
                "type": "http://opds-spec.org/auth/oauth/password",
                "links": [
                    {
                        "rel": "authenticate",
                        "href": f"{at.access}/v1/auth/token",
                        "type": "application/json",
                    }
                ],
            }
        ],
        "links": [{"rel": "start", "href": at.catalog + ROOT_PATH, "type": FEED_TYPE}],
    }


def title_card(title: str, language: str) -> str:
    """A cover drawn from the title, for a book without one (text, never markup)."""
    words, lines, line = escape(title).split(), [], ""
    for word in words:
        if line and len(line) + len(word) > 18:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    text = "".join(
        f'<text x="150" y="{170 + 34 * n}" text-anchor="middle">{part}</text>'
        for n, part in enumerate(lines[:6])
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="450" '
        f'viewBox="0 0 300 450" lang="{escape(language)}">'
        '<rect width="300" height="450" fill="#2f6fde"/>'
        '<rect x="16" y="16" width="268" height="418" fill="none" stroke="#fff" stroke-width="3"/>'
        f'<g fill="#fff" font-family="sans-serif" font-size="26">{text}</g>'
        '<text x="150" y="410" text-anchor="middle" fill="#fff" font-family="sans-serif" '
        'font-size="14">1001 Stories</text></svg>'
    )
