"""Every content endpoint x every role (and anonymous): the exact allow/deny table.

Each cell gets a fresh, valid request for its endpoint: allowed cells must
succeed (2xx), refused cells must be 401 (no token) or 403 (a role too low),
never anything else, so the table tests authorization and nothing but it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from shared.contracts.roles import Role
from stories.samples import text_pdf
from tests.harness.access import Account
from tests.harness.content import ContentHarness
from tests.support import assert_problem

PUBLIC = None
# endpoint -> the least role allowed (PUBLIC: anyone, with or without a token).
TABLE: dict[str, Role | None] = {
    "POST /v1/submissions": Role.VOLUNTEER,
    "POST /v1/books/{id}/derivations": Role.VOLUNTEER,
    "GET /v1/submissions": Role.VOLUNTEER,
    "GET /v1/submissions/{id}": Role.VOLUNTEER,
    "PATCH /v1/submissions/{id}": Role.VOLUNTEER,
    "POST /v1/submissions/{id}/upload": Role.VOLUNTEER,
    "POST /v1/submissions/{id}/submit": Role.VOLUNTEER,
    "GET /v1/submissions/{id}/history": Role.VOLUNTEER,
    "GET /v1/submissions/{id}/manuscript": Role.VOLUNTEER,
    "POST /v1/submissions/{id}/claim": Role.STORY_MANAGER,
    "POST /v1/submissions/{id}/review": Role.STORY_MANAGER,
    "POST /v1/submissions/{id}/clearance": Role.CONTENT_ADMIN,
    "POST /v1/books": Role.BOOK_MANAGER,
    "PATCH /v1/books/{id}": Role.BOOK_MANAGER,
    "POST /v1/books/{id}/cover": Role.BOOK_MANAGER,
    "GET /v1/books?status=DRAFT": Role.BOOK_MANAGER,
    "POST /v1/books/{id}/publish": Role.CONTENT_ADMIN,
    "POST /v1/books/{id}/unpublish": Role.CONTENT_ADMIN,
    "GET /v1/books": PUBLIC,
    "GET /v1/books/{id}": PUBLIC,
    "GET /v1/families/{id}": PUBLIC,
}


@dataclass
class Cast:
    """The other people a cell's setup needs."""

    volunteer: Account
    reviewer: Account
    admin: Account


Call = Callable[[ContentHarness, Cast, Account | None], Awaitable[httpx.Response]]


def headers(actor: Account | None, **extra: str) -> dict[str, str]:
    return {**(actor.headers if actor else {}), **extra}


def owner(cast: Cast, actor: Account | None) -> Account:
    """The author of a cell's own submission: the actor when they may write at all."""
    if actor is not None and actor.role.at_least(Role.VOLUNTEER):
        return actor
    return cast.volunteer


async def create(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    from tests.harness.content import STORY

    return await c.http.post("/v1/submissions", json=STORY, headers=headers(actor))


async def list_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    return await c.http.get("/v1/submissions", headers=headers(actor))


async def get_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    draft = await c.create(owner(cast, actor))
    return await c.http.get(f"/v1/submissions/{draft['id']}", headers=headers(actor))


async def patch_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    draft = await c.create(owner(cast, actor))
    return await c.http.patch(
        f"/v1/submissions/{draft['id']}",
        json={"title": "Renamed"},
        headers=headers(actor, **{"If-Match": '"1"'}),
    )


async def upload_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    draft = await c.create(owner(cast, actor))
    return await c.http.post(
        f"/v1/submissions/{draft['id']}/upload", json={}, headers=headers(actor)
    )


async def submit_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    author = owner(cast, actor)
    draft = await c.create(author)
    await c.upload(author, draft["id"])
    return await c.http.post(
        f"/v1/submissions/{draft['id']}/submit", headers=headers(actor, **{"If-Match": '"1"'})
    )


async def history_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    draft = await c.create(owner(cast, actor))
    return await c.http.get(f"/v1/submissions/{draft['id']}/history", headers=headers(actor))


async def manuscript_own(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    submitted = await c.submitted(owner(cast, actor))
    return await c.http.get(f"/v1/submissions/{submitted['id']}/manuscript", headers=headers(actor))


async def claim(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    submitted = await c.submitted(cast.volunteer)
    return await c.http.post(
        f"/v1/submissions/{submitted['id']}/claim",
        headers=headers(actor, **{"If-Match": f'"{submitted["version"]}"'}),
    )


async def review(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    submitted = await c.submitted(cast.volunteer)
    # Claimed by the actor where the actor reviews (only a claimant decides), else by
    # the cast's reviewer: a refused caller is refused for who they are, not the state.
    reviewer = actor if actor is not None and actor.role.at_least(Role.STORY_MANAGER) else None
    claimed = await c.claim(reviewer or cast.reviewer, submitted)
    assert claimed.status_code == 200, claimed.text
    return await c.http.post(
        f"/v1/submissions/{submitted['id']}/review",
        json={"decision": "approve"},
        headers=headers(actor, **{"If-Match": f'"{claimed.json()["version"]}"'}),
    )


async def clearance(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    # Held: a child's phone number on its last page (#40).
    pdf = text_pdf(["A cat.", "Call 0712 345 678."])
    held = await c.submitted(cast.volunteer, pdf=pdf)
    assert held["held"], held
    return await c.http.post(
        f"/v1/submissions/{held['id']}/clearance",
        json={"reason": "The school's own number."},
        headers=headers(actor, **{"If-Match": f'"{held["version"]}"'}),
    )


async def create_book(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    approved = await c.approved(cast.volunteer, cast.reviewer)
    return await c.http.post(
        "/v1/books",
        json={"submission_id": approved["id"], "access": "entitled"},
        headers=headers(actor),
    )


async def draft_book(c: ContentHarness, cast: Cast) -> dict[str, Any]:
    return await c.book(cast.admin, await c.approved(cast.volunteer, cast.reviewer))


async def patch_book(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await draft_book(c, cast)
    return await c.http.patch(
        f"/v1/books/{book['id']}",
        json={"title": "Retitled"},
        headers=headers(actor, **{"If-Match": '"1"'}),
    )


async def cover(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await draft_book(c, cast)
    return await c.http.post(
        f"/v1/books/{book['id']}/cover", json={"content_type": "image/png"}, headers=headers(actor)
    )


async def list_drafts(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    return await c.http.get("/v1/books", params={"status": "DRAFT"}, headers=headers(actor))


async def publish(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await draft_book(c, cast)
    return await c.http.post(f"/v1/books/{book['id']}/publish", headers=headers(actor))


async def published_book(c: ContentHarness, cast: Cast) -> dict[str, Any]:
    return await c.published_book(author=cast.volunteer, reviewer=cast.reviewer, admin=cast.admin)


async def unpublish(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await published_book(c, cast)
    return await c.http.post(f"/v1/books/{book['id']}/unpublish", headers=headers(actor))


async def catalog(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    return await c.http.get("/v1/books", headers=headers(actor))


async def one_book(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await published_book(c, cast)
    return await c.http.get(f"/v1/books/{book['id']}", headers=headers(actor))


async def derive(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await published_book(c, cast)
    return await c.http.post(
        f"/v1/books/{book['id']}/derivations",
        json={"kind": "translation", "language": "sw"},
        headers=headers(actor),
    )


async def family(c: ContentHarness, cast: Cast, actor: Account | None) -> httpx.Response:
    book = await published_book(c, cast)
    return await c.http.get(f"/v1/families/{book['family_id']}", headers=headers(actor))


CALLS: dict[str, Call] = {
    "POST /v1/submissions": create,
    "POST /v1/books/{id}/derivations": derive,
    "GET /v1/submissions": list_own,
    "GET /v1/submissions/{id}": get_own,
    "PATCH /v1/submissions/{id}": patch_own,
    "POST /v1/submissions/{id}/upload": upload_own,
    "POST /v1/submissions/{id}/submit": submit_own,
    "GET /v1/submissions/{id}/history": history_own,
    "GET /v1/submissions/{id}/manuscript": manuscript_own,
    "POST /v1/submissions/{id}/claim": claim,
    "POST /v1/submissions/{id}/review": review,
    "POST /v1/submissions/{id}/clearance": clearance,
    "POST /v1/books": create_book,
    "PATCH /v1/books/{id}": patch_book,
    "POST /v1/books/{id}/cover": cover,
    "GET /v1/books?status=DRAFT": list_drafts,
    "POST /v1/books/{id}/publish": publish,
    "POST /v1/books/{id}/unpublish": unpublish,
    "GET /v1/books": catalog,
    "GET /v1/books/{id}": one_book,
    "GET /v1/families/{id}": family,
}


def allowed(minimum: Role | None, actor: Account | None) -> bool:
    if minimum is None:
        return True
    return actor is not None and actor.role.at_least(minimum)


async def test_every_endpoint_for_every_role(content: ContentHarness) -> None:
    assert set(CALLS) == set(TABLE)
    cast = Cast(
        volunteer=await content.account(Role.VOLUNTEER),
        reviewer=await content.account(Role.STORY_MANAGER),
        admin=await content.account(Role.CONTENT_ADMIN),
    )
    actors: list[Account | None] = [None] + [await content.account(role) for role in Role]
    seen: dict[tuple[str, str], int] = {}
    wrong = []
    # Each cell makes its own submission or book, so cells run a few at a time: the
    # deep checks of one overlap the HTTP of others (one by one it took over 60 s).
    # Four: content's check line holds one at work and four waiting (else a 503).
    at_once = asyncio.Semaphore(4)

    async def cell(endpoint: str, minimum: Role | None, actor: Account | None) -> None:
        async with at_once:
            response = await CALLS[endpoint](content, cast, actor)
        who = actor.role.value if actor else "anonymous"
        seen[endpoint, who] = response.status_code
        if allowed(minimum, actor):
            ok = 200 <= response.status_code < 300
        else:
            ok = response.status_code == (401 if actor is None else 403)
        if not ok:
            wrong.append((endpoint, who, response.status_code, response.text[:200]))

    await asyncio.gather(
        *(cell(endpoint, minimum, actor) for endpoint, minimum in TABLE.items() for actor in actors)
    )
    assert not wrong, "\n".join(map(str, wrong))
    assert len(seen) == len(TABLE) * (len(Role) + 1)


async def test_the_openapi_document_describes_every_route_with_its_errors(
    content: ContentHarness,
) -> None:
    document = (await content.http.get("/openapi.json")).json()
    for endpoint in TABLE:
        method, path = endpoint.split(" ")
        name = "submission" if "submissions" in path else "family" if "families" in path else "book"
        path = path.split("?")[0].replace("{id}", f"{{{name}_id}}")
        operation = document["paths"][path][method.lower()]
        assert operation["summary"], endpoint
        errors = {int(code) for code in operation["responses"] if code.startswith(("4", "5"))}
        assert 422 in errors, endpoint
        if TABLE[endpoint] is not None:
            assert {401, 403} <= errors, endpoint
            # The catalog is public and shows more with a token: either is documented.
            public = method == "GET" and path in (
                "/v1/books",
                "/v1/books/{book_id}",
                "/v1/families/{family_id}",
            )
            bearer: list[dict[str, list[str]]] = [{"bearer": []}]
            expected = [{}, *bearer] if public else bearer
            assert operation.get("security") == expected, endpoint
    # #13.15: wherever a body is taken, the 400 for a body that is not JSON is documented.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)
    author = await content.account(Role.VOLUNTEER)
    unparseable = await content.http.post(
        "/v1/submissions",
        content=b'{"title":' + b"[" * 1000 + b"]" * 1000 + b"}",
        headers={**author.headers, "Content-Type": "application/json"},
    )
    assert_problem(unparseable, 400)
