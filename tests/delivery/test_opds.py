"""#20 the catalog for reading apps: content's OPDS 2.0 feeds, checked by the
Palace Project's parser (a third party's reading of the format, not our models),
and a scripted reading app that browses, searches, signs in through the
authentication document and acquires a free and an entitled book from delivery."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from uritemplate import expand
from webpub_manifest_parser.opds2 import OPDS2FeedParserFactory

from shared.contracts.roles import Role
from stories.samples import story_pdf
from tests.harness.access import PASSWORD, AccessHarness, Account
from tests.harness.content import ContentHarness
from tests.harness.delivery import DeliveryHarness
from tests.harness.metrics import MetricsHarness
from tests.support import assert_problem, eventually

OPEN_ACCESS = "http://opds-spec.org/acquisition/open-access"
ACQUISITION = "http://opds-spec.org/acquisition"
AUTH_DOCUMENT = "http://opds-spec.org/auth/document"
FEED = "application/opds+json"


def parsed(document: dict[str, Any]) -> Any:
    """The document as the Palace parser reads it; a publication is read inside a
    feed (the parser reads feeds). Any error it finds fails the test."""
    if "publications" not in document and "navigation" not in document:
        document = {
            "metadata": {"title": "one"},
            "links": [{"rel": "self", "href": "https://wrap.example/x", "type": FEED}],
            "publications": [document],
        }
    result = OPDS2FeedParserFactory().create().parse_json(document)
    assert [str(e) for e in result.errors] == [], ([str(e) for e in result.errors], document)
    return result.root


def link(document: dict[str, Any], rel: str) -> dict[str, Any]:
    return next(x for x in document["links"] if rel in _rels(x))


def _rels(x: dict[str, Any]) -> list[str]:
    rel = x.get("rel", [])
    return [rel] if isinstance(rel, str) else list(rel)


class ReadingApp:
    """What a reading app does with the feeds: follow links from the root."""

    def __init__(self, content: ContentHarness) -> None:
        self.base = content.url
        self.http = content.http
        self.token: str | None = None

    async def get(self, href: str, **kw: Any) -> httpx.Response:
        return await self.http.get(urljoin(self.base + "/", href), **kw)

    async def feed(self, href: str) -> dict[str, Any]:
        answer = await self.get(href)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/opds")
        document: dict[str, Any] = answer.json()
        parsed(document)
        return document

    async def sign_in(self, feed: dict[str, Any], email: str, password: str) -> None:
        """Through the authentication document the feed names: its password grant."""
        answer = await self.get(link(feed, AUTH_DOCUMENT)["href"])
        assert answer.headers["content-type"] == "application/opds-authentication+json"
        [method] = answer.json()["authentication"]
        assert method["type"] == "http://opds-spec.org/auth/oauth/password"
        token_url = next(x["href"] for x in method["links"] if x["rel"] == "authenticate")
        granted = await self.http.post(
            token_url,
            data={"grant_type": "password", "username": email, "password": password},
        )
        assert granted.status_code == 200, granted.text
        assert granted.json()["token_type"] == "bearer"
        self.token = granted.json()["access_token"]

    async def acquire(self, publication: dict[str, Any], rel: str) -> httpx.Response:
        href = link(publication, rel)["href"]
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.get(href, headers=headers, follow_redirects=False)


@pytest.fixture(scope="module")
async def library(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> dict[str, dict[str, Any]]:
    """Three free books (two in Swahili, one in English) and an entitled one, known
    to delivery; titles unique to this run so a search finds only them."""
    tag = uuid.uuid4().hex[:6]
    books = {
        "sw1": await content.book_for_readers(
            "free", title=f"Mwezi {tag}", language="sw", pdf=story_pdf("Mwezi", pages=3)
        ),
        "sw2": await content.book_for_readers(
            "free", title=f"Mto {tag}", language="sw", category="nature", reading_level="fluent"
        ),
        "en": await content.book_for_readers("free", title=f"Moons {tag}"),
        "paid": await content.book_for_readers("entitled", title=f"Rivers {tag}"),
    }
    someone = await access.account(Role.LEARNER)

    async def known(book: dict[str, Any]) -> bool:
        answer = await delivery.http.post(
            "/v1/deliveries", json={"book_id": book["id"]}, headers=someone.headers
        )
        return answer.status_code in (200, 403)

    for book in books.values():
        await eventually(partial(known, book), timeout=45, what="the books in delivery")
    books["tag"] = {"value": tag}
    return books


async def test_a_reading_app_browses_searches_signs_in_and_downloads(
    access: AccessHarness,
    content: ContentHarness,
    library: dict[str, dict[str, Any]],
) -> None:
    app = ReadingApp(content)
    root = await app.feed("/opds")
    titles = [x["title"] for x in root["navigation"]]
    assert "Books in sw" in titles
    assert "Reading level: fluent" in titles
    [new] = [g for g in root["groups"] if g["metadata"]["title"] == "New"]
    assert any(p["metadata"]["title"] == library["en"]["title"] for p in new["publications"])

    # Browse: Swahili books, then search them with the feeds' own template.
    swahili = next(x for x in root["navigation"] if x["title"] == "Books in sw")
    in_swahili = await app.feed(swahili["href"])
    ids = {p["metadata"]["identifier"] for p in in_swahili["publications"]}
    assert {f"urn:uuid:{library[k]['id']}" for k in ("sw1", "sw2")} <= ids
    assert f"urn:uuid:{library['en']['id']}" not in ids
    language_facet = next(f for f in in_swahili["facets"] if f["metadata"]["title"] == "Language")
    active = [x for x in language_facet["links"] if "self" in _rels(x)]
    assert [x["title"] for x in active] == ["sw"]
    search = link(root, "search")
    assert search["templated"] is True
    found = await app.feed(expand(search["href"], query=f"Mwezi {library['tag']['value']}"))
    [mwezi] = found["publications"]
    assert mwezi["metadata"]["title"] == library["sw1"]["title"]
    assert mwezi["metadata"]["language"] == "sw"
    # Every publication has a JPEG (#38: a raster image every app takes): a title
    # card drawn while it has no cover; the card as SVG too, text and never markup.
    [jpeg] = [i for i in mwezi["images"] if i["type"] == "image/jpeg"]
    card = await app.get(jpeg["href"])
    assert card.status_code == 200
    assert card.headers["content-type"] == "image/jpeg"
    assert card.content[:3] == b"\xff\xd8\xff"
    drawn = await app.get(jpeg["href"].replace("cover.jpg", "cover.svg"))
    assert drawn.headers["content-type"] == "image/svg+xml"
    assert "Mwezi" in drawn.text
    assert "<script" not in drawn.text
    # Reading apps find where to keep their place (#38).
    progression = link(mwezi, "http://www.cantook.com/api/progression")
    assert progression["type"] == "application/vnd.readium.progression+json"
    assert progression["href"].endswith(f"/v1/reading/{library['sw1']['id']}/progression")
    assert {s["scheme"].rsplit("/", 1)[1] for s in mwezi["metadata"]["subject"]} == {
        "categories",
        "reading-levels",
    }
    assert mwezi["metadata"]["rights"]  # the licence
    own = await app.feed(link(mwezi, "self")["href"])
    assert own == mwezi

    # Acquire the free book: a sign-in first (a 401 without), then a 302 to the PDF.
    assert link(mwezi, OPEN_ACCESS)["type"] == "application/pdf"
    assert_problem(await app.acquire(mwezi, OPEN_ACCESS), 401)
    reader = await access.account(Role.LEARNER)
    await app.sign_in(root, reader.email, PASSWORD)
    answer = await app.acquire(mwezi, OPEN_ACCESS)
    assert answer.status_code == 302, answer.text
    assert answer.headers["cache-control"] == "no-store"
    async with httpx.AsyncClient() as browser:
        pdf = await browser.get(answer.headers["location"])
    assert pdf.status_code == 200
    assert pdf.content == story_pdf("Mwezi", pages=3)

    # The entitled book names the authentication document; without a grant, 403;
    # given the book, the same app downloads it.
    paid = await app.feed(f"/opds/books/{library['paid']['id']}")
    acquisition = link(paid, ACQUISITION)
    assert acquisition["properties"]["authenticate"]["type"] == (
        "application/opds-authentication+json"
    )
    assert_problem(await app.acquire(paid, ACQUISITION), 403)
    admin = await access.account(Role.ADMIN)
    granted = await access.http.post(
        "/v1/entitlements",
        json={"user_id": str(reader.id), "book_id": library["paid"]["id"], "source": "purchase"},
        headers=admin.headers,
    )
    assert granted.status_code == 201, granted.text

    async def downloadable() -> bool:
        return (await app.acquire(paid, ACQUISITION)).status_code == 302

    await eventually(downloadable, timeout=10, what="the grant in delivery")


async def test_pages_follow_next_links_and_the_feeds_follow_the_catalog(
    content: ContentHarness, library: dict[str, dict[str, Any]]
) -> None:
    app = ReadingApp(content)
    seen: list[str] = []
    href: str | None = "/opds/books?limit=2"
    while href is not None:
        page = await app.feed(href)
        assert len(page["publications"]) <= 2
        seen += [p["metadata"]["identifier"] for p in page["publications"]]
        following = [x for x in page["links"] if "next" in _rels(x)]
        href = following[0]["href"] if following else None
    assert len(seen) == len(set(seen))
    assert {f"urn:uuid:{b['id']}" for k, b in library.items() if k != "tag"} <= set(seen)

    # Cached like the catalog: a revalidation is a 304, and a new book shows at once.
    first = await app.get("/opds/books")
    again = await app.get("/opds/books", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    newer = await content.book_for_readers("free", title=f"Stars {uuid.uuid4().hex[:6]}")
    latest = await app.feed("/opds/books")
    assert latest["publications"][0]["metadata"]["identifier"] == f"urn:uuid:{newer['id']}"


@pytest.mark.parametrize(
    "query",
    ["age=99", "reading_level=expert", "language=not a tag", "limit=0", "query=" + "x" * 101],
)
async def test_bad_feed_queries_are_problems(content: ContentHarness, query: str) -> None:
    assert_problem(await content.http.get(f"/opds/books?{query}"), 422)


async def test_the_password_grant_refuses_what_is_not_one(access: AccessHarness) -> None:
    reader: Account = await access.account(Role.LEARNER)
    token = "/v1/auth/token"
    as_json = await access.http.post(
        token, json={"grant_type": "password", "username": reader.email, "password": PASSWORD}
    )

    # #38: refusals as RFC 6749 5.2 has them (they were 401, 415 and 422 problems).
    def oauth_error(answer: httpx.Response) -> str:
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["error_description"]
        return str(answer.json()["error"])

    assert oauth_error(as_json) == "invalid_request"
    for form, error in (
        ({"grant_type": "client_credentials", "username": reader.email, "password": "x"},
         "unsupported_grant_type"),
        ({"grant_type": "password", "username": reader.email}, "invalid_request"),
        ({"grant_type": "password", "username": reader.email, "password": "wrong one"},
         "invalid_grant"),
    ):  # fmt: skip
        assert oauth_error(await access.http.post(token, data=form)) == error
    doubled = f"grant_type=password&username={reader.email}&username=x&password=p"
    answer = await access.http.post(
        token, content=doubled, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert oauth_error(answer) == "invalid_request"
    right = await access.http.post(
        token, data={"grant_type": "password", "username": reader.email, "password": PASSWORD}
    )
    assert right.status_code == 200, right.text
    assert (right.headers["cache-control"], right.headers["pragma"]) == ("no-store", "no-cache")


async def test_only_signed_in_readers_acquire(
    access: AccessHarness, delivery: DeliveryHarness, library: dict[str, dict[str, Any]]
) -> None:
    path = f"/v1/deliveries/{library['en']['id']}/acquire"
    assert_problem(await delivery.http.get(path), 401)
    service = await access.service_token("content")
    assert_problem(await delivery.http.get(path, headers=service), 403)
    unknown = await access.account(Role.LEARNER)
    missing = await delivery.http.get(
        f"/v1/deliveries/{uuid.uuid4()}/acquire", headers=unknown.headers
    )
    assert_problem(missing, 404)


async def test_the_root_groups_the_most_read_and_each_language(
    access: AccessHarness,
    content: ContentHarness,
    delivery: DeliveryHarness,
    metrics: MetricsHarness,
    library: dict[str, dict[str, Any]],
) -> None:
    """The "Most read" group comes from metrics (distinct readers lately, most
    first); each language has a group of its newest books."""
    # On top of the readers earlier tests brought (one or two each), clearly apart.
    for key, readers in (("en", 9), ("sw1", 6), ("sw2", 3)):
        for _ in range(readers):
            reader = await access.account(Role.LEARNER)
            answer = await delivery.http.post(
                "/v1/deliveries", json={"book_id": library[key]["id"]}, headers=reader.headers
            )
            assert answer.status_code == 200, answer.text
    reader = await access.account(Role.LEARNER)
    admin = await access.account(Role.CONTENT_ADMIN)
    wanted = [library[k]["id"] for k in ("en", "sw1", "sw2")]

    async def counted() -> bool:
        found = await metrics.get("/v1/metrics/most-read", admin.headers, limit=100)
        ranked = [b["book_id"] for b in found["books"] if b["book_id"] in wanted]
        return ranked == wanted

    await eventually(counted, timeout=60, what="the opens in metrics")
    await content.book_for_readers("free")  # empties the feeds' cache
    app = ReadingApp(content)
    root = await app.feed("/opds")
    groups = {g["metadata"]["title"]: g for g in root["groups"]}
    popular = [p["metadata"]["identifier"] for p in groups["Most read"]["publications"]]
    assert [p for p in popular if p.removeprefix("urn:uuid:") in wanted] == [
        f"urn:uuid:{i}" for i in wanted
    ]
    in_sw = {p["metadata"]["language"] for p in groups["In sw"]["publications"]}
    assert in_sw == {"sw"}
    assert {"New", "Most read", "In en", "In sw"} <= set(groups)
    # Only content (for its feeds) and platform viewers read the most read books.
    assert_problem(await metrics.http.get("/v1/metrics/most-read", headers=reader.headers), 403)
    delivery_token = await access.service_token("delivery")
    assert_problem(await metrics.http.get("/v1/metrics/most-read", headers=delivery_token), 403)
