"""The public catalog: filters, stable cursor pages, ETags, the cache emptied on every
instance by a publish or unpublish, and index use on a cache miss."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text

from services.content.catalog import CATALOG_CHANNEL, CATALOG_PARAMETERS, OPDS_FEED_PARAMETERS
from services.content.components import app_components
from services.content.models import Book
from services.content.repository import CatalogQuery, ContentRepository
from shared.contracts.roles import Role
from shared.resources import resources_of
from tests.harness.access import AccessHarness
from tests.harness.content import ContentHarness, start_content
from tests.support import HOSTILE_CURSORS, assert_problem, eventually, fast_path_answers

LANGUAGES = ["en", "sw", "fr", "pt-BR"]
CATEGORIES = ["animals", "family", "science", "adventure", "friendship"]
LEVELS = ["emergent", "early", "transitional", "fluent"]


def catalog_book(
    n: int, *, status: str = "PUBLISHED", at: datetime | None = None
) -> dict[str, Any]:
    moment = at or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    return {
        "id": uuid.uuid4(),
        "submission_id": uuid.uuid4(),
        "title": f"Story number {n} of the {CATEGORIES[n % 5]}",
        "summary": f"A tale in {LANGUAGES[n % 4]} about {'moons' if n % 7 == 0 else 'rivers'}.",
        "language": LANGUAGES[n % 4],
        "age_min": n % 6,
        "age_max": n % 6 + 4,
        "category": CATEGORIES[n % 5],
        "reading_level": LEVELS[n % 4],
        "access": "free" if n % 2 else "entitled",
        "status": status,
        "version": 1,
        "source_key": f"manuscripts/{uuid.uuid4()}/x.pdf",
        "edition": 1,
        "object_key": f"books/{n}/1-key.pdf",
        "object_version": "v1",
        "created_by": uuid.uuid4(),
        "created_at": moment,
        "updated_at": moment,
        "published_at": moment if status == "PUBLISHED" else None,
    }


async def seed(content: ContentHarness, rows: list[dict[str, Any]]) -> None:
    async with content.resources.session_factory() as session:
        await session.execute(insert(Book), rows)
        await session.commit()
    # Test setup writes past the service: tell every instance, as a publish would.
    await content.resources.bus.publish(CATALOG_CHANNEL, "*")


async def all_pages(content: ContentHarness, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await content.http.get("/v1/books", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_filters_and_stable_pages(content: ContentHarness) -> None:
    rows = [catalog_book(n) for n in range(120)]
    rows += [catalog_book(1000 + n, status="DRAFT") for n in range(5)]
    # Books published at the same moment still come in one stable order.
    same_time = datetime(2026, 6, 1, tzinfo=UTC)
    rows += [catalog_book(2000 + n, at=same_time) for n in range(6)]
    await seed(content, rows)
    published = [r for r in rows if r["status"] == "PUBLISHED"]

    everything = await all_pages(content, limit=7)
    assert len(everything) == len(published)
    assert len({b["id"] for b in everything}) == len(published)
    moments = [b["published_at"] for b in everything]
    assert moments == sorted(moments, reverse=True)
    assert {b["status"] for b in everything} == {"PUBLISHED"}

    def expected(predicate: Any) -> set[str]:
        return {str(r["id"]) for r in published if predicate(r)}

    swahili = await all_pages(content, language="sw", limit=20)
    assert {b["id"] for b in swahili} == expected(lambda r: r["language"] == "sw")
    science = await all_pages(content, category="science", reading_level="fluent")
    assert {b["id"] for b in science} == expected(
        lambda r: r["category"] == "science" and r["reading_level"] == "fluent"
    )
    seven = await all_pages(content, age=7)
    assert {b["id"] for b in seven} == expected(lambda r: r["age_min"] <= 7 <= r["age_max"])
    moons = await all_pages(content, q="  MOONS ")
    assert {b["id"] for b in moons} == expected(lambda r: "moons" in r["summary"])
    assert moons


async def test_bad_catalog_queries_are_problems(content: ContentHarness) -> None:
    cursors: list[dict[str, str | int]] = [{"cursor": c} for c in HOSTILE_CURSORS.values()]
    bad: list[dict[str, str | int]] = [
        {"limit": 0},
        {"limit": 101},
        {"age": 40},
        *cursors,
        {"language": "E N"},
        {"reading_level": "expert"},
        {"status": "DELETED"},
        {"q": "x" * 101},
    ]
    for params in bad:
        response = await content.http.get("/v1/books", params=params)
        assert_problem(response, 422)
    assert (await content.http.get("/v1/books/not-a-uuid")).status_code == 422
    assert (await content.http.get(f"/v1/books/{uuid.uuid4()}")).status_code == 404
    bad_token = await content.http.get("/v1/books", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401


async def test_only_book_managers_see_unpublished_books(content: ContentHarness) -> None:
    draft = catalog_book(5000, status="DRAFT")
    await seed(content, [draft])
    learner = await content.account(Role.LEARNER)
    story_manager = await content.account(Role.STORY_MANAGER)
    book_manager = await content.account(Role.BOOK_MANAGER)
    for viewer in ({}, learner.headers, story_manager.headers):
        response = await content.http.get("/v1/books", params={"status": "DRAFT"}, headers=viewer)
        assert response.status_code == (401 if viewer == {} else 403), response.text
        assert (
            await content.http.get(f"/v1/books/{draft['id']}", headers=viewer)
        ).status_code == 404
    drafts = await content.http.get(
        "/v1/books", params={"status": "DRAFT"}, headers=book_manager.headers
    )
    assert str(draft["id"]) in [b["id"] for b in drafts.json()["items"]]
    assert drafts.headers["Cache-Control"] == "private, no-store"
    one = await content.http.get(f"/v1/books/{draft['id']}", headers=book_manager.headers)
    assert one.json()["status"] == "DRAFT"


async def test_etags_answer_304_until_the_catalog_changes(content: ContentHarness) -> None:
    params: dict[str, str | int] = {"category": "friendship", "limit": 5}
    first = await content.http.get("/v1/books", params=params)
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, no-cache"
    unchanged = await content.http.get("/v1/books", params=params, headers={"If-None-Match": tag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    await seed(content, [catalog_book(9000 + 4, at=datetime.now(UTC))])  # a friendship book

    async def changed() -> bool:
        again = await content.http.get("/v1/books", params=params, headers={"If-None-Match": tag})
        return again.status_code == 200 and again.headers["ETag"] != tag

    await eventually(changed, timeout=5, what="a new ETag after the catalog changed")


async def test_a_cached_page_is_answered_before_routing_and_only_for_anonymous_readers(
    content: ContentHarness,
) -> None:
    params: dict[str, str | int] = {"category": "animals", "limit": 3, "language": "fr"}
    before = await fast_path_answers(content.http, "GET", "/v1/books")
    first = await content.http.get("/v1/books", params=params)  # a miss: the endpoint
    assert first.status_code == 200
    assert await fast_path_answers(content.http, "GET", "/v1/books") == before
    again = await content.http.get("/v1/books", params=params)
    unchanged = await content.http.get(
        "/v1/books", params=params, headers={"If-None-Match": first.headers["ETag"]}
    )
    assert (again.status_code, again.content, again.headers["ETag"]) == (
        200, first.content, first.headers["ETag"]
    )  # fmt: skip
    assert unchanged.status_code == 304
    assert await fast_path_answers(content.http, "GET", "/v1/books", 200) >= 1
    assert await fast_path_answers(content.http, "GET", "/v1/books") == before + 2
    # A signed-in caller may be a manager, who sees more: the endpoint decides.
    manager = await content.account(Role.STORY_MANAGER)
    signed_in = await content.http.get("/v1/books", params=params, headers=manager.headers)
    assert signed_in.status_code == 200
    assert await fast_path_answers(content.http, "GET", "/v1/books") == before + 2


async def entries_made(cache: Any, requests: Callable[[int], Awaitable[None]]) -> int:
    """How many cache entries `requests(limit)` made, counted in a stretch that no
    invalidation crossed: one landing mid-count (an earlier test's seed or publish,
    over Redis) empties the cache under it (CI counted 0), so such a stretch is
    counted again, with keys of its own (another `limit`)."""
    for limit in range(73, 68, -1):  # limits no other test asks for
        seen = cache.invalidations_seen
        before = cache.size[0]
        await requests(limit)
        if cache.invalidations_seen == seen:
            return int(cache.size[0] - before)
        await asyncio.sleep(0.2)
    raise AssertionError("the catalog cache was emptied during every count")


async def test_parameters_nobody_reads_make_no_new_cache_entry(content: ContentHarness) -> None:
    """#37 F12: the key was the raw query string, so `?limit=100&junk=N` grew content
    by 110 MB in 2,000 requests, then hitting the bound emptied the cache. The key is
    now the parameters the endpoint reads, in one order."""
    await eventually(content.catalog_cache_ready, what="the cache listening")
    cache = app_components(content.app).catalog
    await seed(content, [catalog_book(n) for n in range(3)])

    async def requests(limit: int) -> None:
        first = await content.http.get("/v1/books", params={"limit": limit})
        for n in range(50):
            junk = await content.http.get(f"/v1/books?junk={n}&limit={limit}&x{n}=1")
            assert junk.content == first.content
        reordered = await content.http.get(f"/v1/books?language=en&limit={limit}")
        same = await content.http.get(f"/v1/books?limit={limit}&language=en&utm=ad")
        assert reordered.content == same.content

    # The page and the language page: the junk and the order made none.
    assert await entries_made(cache, requests) == 2


async def test_opds_feeds_are_keyed_by_what_they_read_and_the_host_in_one_case(
    content: ContentHarness,
) -> None:
    await eventually(content.catalog_cache_ready, what="the cache listening")
    cache = app_components(content.app).catalog
    host = httpx.URL(content.url).netloc.decode()

    async def requests(limit: int) -> None:
        await content.http.get(f"/opds/books?limit={limit}")
        for n in range(20):
            await content.http.get(f"/opds/books?limit={limit}&junk={n}")
            await content.http.get(f"/opds/books?limit={limit}", headers={"Host": host.upper()})

    assert await entries_made(cache, requests) == 1  # the feed, once


def test_the_cache_keys_name_exactly_the_endpoints_parameters(content: ContentHarness) -> None:
    paths = content.app.openapi()["paths"]

    def query_names(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    assert query_names("/v1/books") == CATALOG_PARAMETERS
    assert query_names("/opds/books") == OPDS_FEED_PARAMETERS


async def test_publish_and_unpublish_reach_every_instance_cache_at_once(
    content: ContentHarness, access: AccessHarness
) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    marker = f"zebra{uuid.uuid4().hex[:6]}"
    approved = await content.approved(author, reviewer, title=f"The {marker} stripes")
    book = await content.book(admin, approved)
    async with AsyncExitStack() as stack:
        other = await start_content(stack, access, content.settings)

        async def listed(instance: ContentHarness) -> list[str]:
            page = (await instance.http.get("/v1/books", params={"q": marker})).json()
            return [b["id"] for b in page["items"]]

        await eventually(other.catalog_cache_ready, what="the other instance's subscription")
        await eventually(content.catalog_cache_ready, what="the first instance's subscription")
        # Both instances have the (empty) answer cached.
        assert await listed(content) == await listed(other) == []
        published = await content.http.post(
            f"/v1/books/{book['id']}/publish", headers=admin.headers
        )
        assert published.status_code == 200
        assert await listed(content) == [book["id"]]
        await eventually(lambda: _is(listed(other), [book["id"]]), timeout=2, what="other instance")
        await other.http.post(f"/v1/books/{book['id']}/unpublish", headers=admin.headers)
        assert await listed(other) == []
        await eventually(lambda: _is(listed(content), []), timeout=2, what="first instance")
        assert (await content.http.get(f"/v1/books/{book['id']}")).status_code == 404


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_new_instance_takes_traffic_with_book_pages_cached_and_credentials_fetched(
    content: ContentHarness, access: AccessHarness
) -> None:
    """A deploy meets a whole school at once: each published book's public page is
    in the cache before the process listens, as exactly the bytes and ETag the
    endpoint answers; a draft's is not."""
    rows = [catalog_book(40_000 + n) for n in range(30)]
    draft = catalog_book(41_000, status="DRAFT")
    await seed(content, [*rows, draft])
    async with AsyncExitStack() as stack:
        other = await start_content(stack, access, content.settings)
        cache = app_components(other.app).catalog
        assert cache.get(("book", draft["id"])) is None
        for row in rows:
            cached = cache.get(("book", row["id"]))
            assert cached is not None, row["title"]
            loaded = await content.http.get(f"/v1/books/{row['id']}")
            assert loaded.status_code == 200
            assert cached == (loaded.headers["ETag"], loaded.content)
        # Nor does its first signed-in request wait for access's keys or its first
        # staff step for this service's own token: both are fetched as it starts.
        opened = resources_of(other.app)
        await eventually(
            lambda: opened.signing_keys.holds_keys and opened.access.holds_service_token,
            timeout=10,
            what="the credentials prefetched",
        )
        first = await other.http.get(f"/v1/books/{rows[0]['id']}")
        assert first.status_code == 200
        assert first.content == cache.get(("book", rows[0]["id"]))[1]  # type: ignore[index]


async def test_catalog_queries_use_the_indexes(content: ContentHarness) -> None:
    await seed(content, [catalog_book(20_000 + n) for n in range(10_000)])
    async with content.resources.session_factory() as session:
        await session.execute(text("ANALYZE books"))
        repository = ContentRepository(session)
        plans = {}
        for name, query in {
            "language": CatalogQuery(language="sw", limit=20),
            "category": CatalogQuery(category="science", limit=20),
            "text": CatalogQuery(text="moons", limit=20),
            "text in French": CatalogQuery(language="fr", text="moons", limit=20),
            "all": CatalogQuery(limit=20),
        }.items():
            compiled = repository.catalog_statement(query).compile(
                session.get_bind(), compile_kwargs={"literal_binds": True}
            )
            rows = await session.execute(text(f"EXPLAIN {compiled}"))
            plans[name] = "\n".join(r[0] for r in rows)
    # The planner picks among our indexes by selectivity (a language that is a
    # quarter of the books is read fastest along the date index, filtered);
    # what must never happen is a scan of the whole table.
    for name, plan in plans.items():
        assert re.search(r"(using|on) ix_books_(catalog\w*|search)", plan), (name, plan)
        assert "Seq Scan" not in plan, (name, plan)
    assert "ix_books_search" in plans["text"], plans["text"]
    # A language filter searches in that language's configuration (its own index).
    assert "ix_books_search_french" in plans["text in French"], plans["text in French"]


async def test_search_finds_stems_in_each_books_language(content: ContentHarness) -> None:
    """`q` is stemmed in each book's language (a `simple` match would miss every one
    of these but the Swahili), and a language filter searches in that language."""
    texts = {
        "en": "The foxes were running home",
        "fr": "Les renards couraient vers la maison",
        "es": "Los zorros corrían a casa",
        "pt-BR": "As raposas correram para casa",
        "sw": "Mbweha walikimbia nyumbani",
    }
    rows = []
    for n, (language, summary) in enumerate(texts.items()):
        row = catalog_book(50_000 + n) | {"language": language, "summary": summary}
        rows.append(row)
    await seed(content, rows)
    ids = {row["language"]: str(row["id"]) for row in rows}

    async def found(q: str, **params: Any) -> set[str]:
        return {b["id"] for b in await all_pages(content, q=q, **params)}

    assert await found("fox run") == {ids["en"]}
    assert await found("renard") == {ids["fr"]}
    assert await found("zorro") == {ids["es"]}
    assert await found("raposa") == {ids["pt-BR"]}
    assert await found("mbweha") == {ids["sw"]}
    assert await found("mbwe") == set()  # no stemmer for Swahili: whole words only
    assert await found("renard", language="fr") == {ids["fr"]}
    assert await found("renard", language="en") == set()


async def test_opds_facets_count_within_the_filter_and_offer_only_real_choices(
    content: ContentHarness,
) -> None:
    """#38: the age facet offered ages no book suits, facet links had no
    numberOfItems, and inside a filtered feed the other facets' counts ignored the
    filter. Each facet is counted with the other choices applied, shows only values
    that find books, and only when there are two or more to choose from."""
    category = f"facet-{uuid.uuid4().hex[:8]}"
    shapes = [("en", "early", 4, 8)] * 3 + [("en", "fluent", 9, 12)] + [("sw", "early", 4, 8)] * 2
    rows = []
    for n, (language, level, low, high) in enumerate(shapes):
        row = catalog_book(9000 + n)
        row |= {"category": category, "language": language, "reading_level": level,
                "age_min": low, "age_max": high}  # fmt: skip
        rows.append(row)
    elsewhere = catalog_book(9100) | {"category": f"{category}-other"}
    await seed(content, [*rows, elsewhere])

    def facets_of(feed: dict[str, Any]) -> dict[str, dict[str, int]]:
        return {
            facet["metadata"]["title"]: {
                link["title"]: link["properties"]["numberOfItems"] for link in facet["links"]
            }
            for facet in feed.get("facets", [])
        }

    in_category = facets_of((await content.http.get(f"/opds/books?category={category}")).json())
    assert in_category["Language"] == {"en": 4, "sw": 2}
    assert in_category["Reading level"] == {"early": 5, "fluent": 1}
    assert in_category["Age"] == {"age 5": 5, "age 7": 5, "age 9": 1, "age 11": 1}  # no "age 3"
    # Its own choice left out: every category, this one with its six.
    assert in_category["Category"][category] == 6
    assert in_category["Category"][f"{category}-other"] == 1
    in_swahili = facets_of(
        (await content.http.get(f"/opds/books?category={category}&language=sw")).json()
    )
    assert in_swahili["Language"] == {"en": 4, "sw": 2}  # its own choice left out
    assert "Reading level" not in in_swahili  # one level only: no choice
    assert in_swahili["Age"] == {"age 5": 2, "age 7": 2}  # within Swahili
    nothing = (await content.http.get(f"/opds/books?category={category}&query=qqqqq")).json()
    assert "publications" not in nothing
    assert [link["title"] for link in nothing["navigation"]] == ["All books", "The library"]
