"""The decisions fast path answers a cached decision before routing, and only that:
every other request reaches the endpoint and gets exactly the endpoint's answer."""

from __future__ import annotations

import uuid

from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.support import assert_problem, fast_path_answers

DECISIONS = "/v1/decisions"
ME = "/v1/users/me"


async def test_a_cached_decision_is_the_same_answer_and_everything_else_is_unchanged(
    access: AccessHarness,
) -> None:
    learner = await access.account(Role.LEARNER)
    book = await access.put_book(published=True, access="free")
    service = await access.service_token()
    ask = {"user_id": str(learner.id), "action": "book:read", "resource_id": str(book)}
    first = await access.http.post("/v1/decisions", headers=service, json=ask)
    assert first.status_code == 200, first.text
    # Now cached: answered by the fast path, byte for byte the endpoint's answer.
    cached = await access.http.post("/v1/decisions", headers=service, json=ask)
    assert cached.status_code == 200
    assert (
        cached.json()
        == first.json()
        == {
            "allow": True,
            "reason": "free book",
            "languages": None,
        }
    )
    assert cached.headers["content-type"] == "application/json"
    assert "x-request-id" in cached.headers  # still inside the shared middleware
    assert await fast_path_answers(access.http, "POST", DECISIONS) == 1  # this one, not the first

    # The same cached question, asked wrongly, gets the endpoint's refusal.
    refused = await access.http.post("/v1/decisions", headers=learner.headers, json=ask)
    assert refused.status_code == 403
    assert (await access.http.post("/v1/decisions", json=ask)).status_code == 401
    bad_token = {"Authorization": "Bearer not.a.token"}
    assert (await access.http.post("/v1/decisions", headers=bad_token, json=ask)).status_code == 401
    extra = await access.http.post("/v1/decisions", headers=service, json={**ask, "role": "ADMIN"})
    assert extra.status_code == 422
    broken = await access.http.post(
        "/v1/decisions",
        headers={**service, "Content-Type": "application/json"},
        content=b'{"user_id": ',
    )
    assert_problem(broken, 400, "malformed-json")  # #38: JSON that does not parse
    # #13.10: a thousand levels of nesting in a kilobyte is the caller's error, not a 500.
    deep = await access.http.post(
        "/v1/decisions",
        headers={**service, "Content-Type": "application/json"},
        content=b'{"user_id":' + b"[" * 1000 + b"]" * 1000 + b"}",
    )
    assert 400 <= deep.status_code < 500, deep.text
    # A non-canonical spelling misses the fast path but means the same question.
    upper = await access.http.post(
        "/v1/decisions", headers=service, json={**ask, "user_id": str(learner.id).upper()}
    )
    assert upper.json() == first.json()
    # A body too large for the fast path still reaches the endpoint whole.
    padded = (
        b'{"user_id": "' + str(learner.id).encode() + b'", "action": "book:read",'
        b' "resource_id": "' + str(book).encode() + b'"' + b" " * 2000 + b"}"
    )
    big = await access.http.post(
        "/v1/decisions", headers={**service, "Content-Type": "application/json"}, content=padded
    )
    assert big.json() == first.json()
    # Every one of those reached the endpoint: the fast path answered only the cached one.
    assert await fast_path_answers(access.http, "POST", DECISIONS) == 1
    # An invalidation reaches the fast path too.
    await access.resources.decisions.invalidate_user(learner.id)
    other_book = uuid.uuid4()
    unknown = await access.http.post(
        "/v1/decisions", headers=service, json={**ask, "resource_id": str(other_book)}
    )
    assert unknown.json() == {
        "allow": False,
        "reason": "book not published",
        "languages": None,
    }
    again = await access.http.post("/v1/decisions", headers=service, json=ask)
    assert again.json() == first.json()
    assert await fast_path_answers(access.http, "POST", DECISIONS) == 1  # invalidated: a miss


async def test_a_cached_profile_is_the_endpoints_answer_and_changes_reach_it(
    access: AccessHarness,
) -> None:
    reviewer = await access.account(Role.STORY_MANAGER)
    first = await access.http.get("/v1/users/me", headers=reviewer.headers)
    assert first.status_code == 200, first.text
    assert await fast_path_answers(access.http, "GET", ME) == 0  # a miss: the endpoint
    cached = await access.http.get("/v1/users/me", headers=reviewer.headers)
    assert await fast_path_answers(access.http, "GET", ME) == 1
    assert cached.content == first.content
    for header in ("content-type", "content-length", "cache-control", "x-content-type-options"):
        assert cached.headers[header] == first.headers[header], header
    assert cached.headers["cache-control"] == "no-store"  # a person's own answer
    assert cached.headers["x-request-id"] != first.headers["x-request-id"]

    # Refusals, a query and a service are the endpoint's to answer.
    assert (await access.http.get("/v1/users/me")).status_code == 401
    assert (
        await access.http.get("/v1/users/me", headers={"Authorization": "Bearer x.y.z"})
    ).status_code == 401
    service = await access.service_token()
    assert (await access.http.get("/v1/users/me", headers=service)).status_code == 403
    with_query = await access.http.get("/v1/users/me?fields=all", headers=reviewer.headers)
    assert with_query.json() == first.json()
    assert await fast_path_answers(access.http, "GET", ME) == 1

    # A change to the account reaches the next answer (the cache is invalidated).
    declared = await access.http.put(
        "/v1/users/me/review-languages", json={"languages": ["sw"]}, headers=reviewer.headers
    )
    assert declared.status_code == 200, declared.text
    after = await access.http.get("/v1/users/me", headers=reviewer.headers)
    assert after.json()["review_languages"] == ["sw"]
    again = await access.http.get("/v1/users/me", headers=reviewer.headers)
    assert again.json()["review_languages"] == ["sw"]
    assert await fast_path_answers(access.http, "GET", ME) == 2
