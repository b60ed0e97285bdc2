"""Every access endpoint x every role (and anonymous, and a service): the exact table.

Allowed means "not refused for who you are": the answer may still be 404 or
409 about the resource, but never 401 or 403.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.support import assert_problem

PUBLIC = "public"
ANY_USER = "any signed-in caller"
SERVICE = "service only"
LEARNERS_ONLY = "learner accounts only"  # joining a class: staff do not join as learners


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    who: Role | str
    body: Any = None


FORGED_CONSENT = f"{uuid.uuid4().hex}.give.4102444800.AAAAAAAAAAAAAAAAAAAAAAAA"


def endpoints(learner: uuid.UUID, book: uuid.UUID) -> list[Endpoint]:
    grant = {"user_id": str(learner), "book_id": str(book), "source": "teacher_assignment"}
    return [
        Endpoint("POST", "/v1/auth/register", PUBLIC, "register"),
        Endpoint("POST", "/v1/auth/login", PUBLIC, {"email": "x@example.org", "password": "p"}),
        Endpoint("POST", "/v1/auth/refresh", PUBLIC, {"refresh_token": "x.y"}),
        Endpoint(
            "POST", "/v1/auth/service-token", PUBLIC, {"client_id": "x", "client_secret": "y"}
        ),
        Endpoint("GET", "/.well-known/jwks.json", PUBLIC),
        # #20: the OPDS password grant (a form; this JSON body is a 415, not a refusal).
        Endpoint("POST", "/v1/auth/token", PUBLIC, {"grant_type": "password"}),
        Endpoint(
            "POST",
            "/v1/auth/class-register",
            PUBLIC,
            {"code": "XXXXXX", "display_name": "Table", "password": "simba"},
        ),
        Endpoint(
            "POST",
            "/v1/auth/class-login",
            PUBLIC,
            {"code": "XXXXXX", "username": "table", "password": "simba"},
        ),
        # #41 a parent's links: public, the signed token is the credential (a forged
        # one is a 404 for everyone, never a 401/403).
        Endpoint("GET", f"/v1/auth/consents/{FORGED_CONSENT}", PUBLIC),
        Endpoint("POST", f"/v1/auth/consents/{FORGED_CONSENT}", PUBLIC, {"answer": "agree"}),
        # #19 classes: a random class id is a 404 for a teacher (not theirs), never
        # a 401/403; below TEACHER, a 403 whatever the class.
        Endpoint("POST", "/v1/classes", Role.TEACHER, {"name": "Table class"}),
        Endpoint("GET", "/v1/classes", Role.TEACHER),
        Endpoint("GET", f"/v1/classes/{uuid.uuid4()}", Role.TEACHER),
        Endpoint("POST", f"/v1/classes/{uuid.uuid4()}/join-code", Role.TEACHER, {}),
        Endpoint("POST", f"/v1/classes/{uuid.uuid4()}/archive", Role.TEACHER),
        Endpoint(
            "POST", f"/v1/classes/{uuid.uuid4()}/learners", Role.TEACHER, {"display_names": ["A"]}
        ),
        Endpoint("GET", f"/v1/classes/{uuid.uuid4()}/learners", Role.TEACHER),
        Endpoint("DELETE", f"/v1/classes/{uuid.uuid4()}/learners/{learner}", Role.TEACHER),
        Endpoint("POST", f"/v1/classes/{uuid.uuid4()}/learners/{learner}/password", Role.TEACHER),
        Endpoint("POST", "/v1/classes/join", LEARNERS_ONLY, {"code": "XXXXXX"}),
        Endpoint(
            "POST", f"/v1/classes/{uuid.uuid4()}/assignments", Role.TEACHER, {"book_id": str(book)}
        ),
        Endpoint("GET", f"/v1/classes/{uuid.uuid4()}/assignments", Role.TEACHER),
        Endpoint("GET", f"/v1/classes/{uuid.uuid4()}/progress", Role.TEACHER),
        # #41 exports: one's own; a teacher a class account of theirs (a random id: 404),
        # an ADMIN any; below TEACHER, a 403 for anyone else's.
        Endpoint("POST", "/v1/users/me/export", Role.LEARNER),
        Endpoint("GET", "/v1/users/me/export", Role.LEARNER),
        Endpoint("POST", f"/v1/users/{uuid.uuid4()}/export", Role.TEACHER),
        Endpoint("GET", f"/v1/users/{uuid.uuid4()}/export", Role.TEACHER),
        Endpoint("DELETE", "/v1/users/me", Role.LEARNER),
        # Erasing: a teacher for a class account of theirs (a random id: 404), ADMIN any.
        Endpoint("DELETE", f"/v1/users/{uuid.uuid4()}", Role.TEACHER),
        Endpoint("DELETE", f"/v1/classes/{uuid.uuid4()}/assignments/{uuid.uuid4()}", Role.TEACHER),
        Endpoint("POST", "/v1/auth/logout", ANY_USER),
        Endpoint("GET", "/v1/users/me", Role.LEARNER),
        Endpoint("GET", "/v1/users/me/books", Role.LEARNER),
        Endpoint("GET", "/v1/entitlements", Role.LEARNER),
        Endpoint("POST", "/v1/entitlements", Role.TEACHER, grant),
        Endpoint(
            "POST",
            "/v1/entitlements/bulk",
            Role.TEACHER,
            {**{k: v for k, v in grant.items() if k != "user_id"}, "user_ids": [str(learner)]},
        ),
        Endpoint("DELETE", f"/v1/entitlements/{uuid.uuid4()}", Role.TEACHER),
        Endpoint("GET", "/v1/users", Role.ADMIN),
        Endpoint("GET", "/v1/users/audit-log", Role.ADMIN),
        Endpoint("PUT", f"/v1/users/{learner}/role", Role.ADMIN, {"role": "LEARNER"}),
        Endpoint("PUT", "/v1/users/me/review-languages", Role.STORY_MANAGER, {"languages": ["sw"]}),
        # A learner reviews nothing (409), but only an ADMIN may be told so.
        Endpoint("PUT", f"/v1/users/{learner}/review-languages", Role.ADMIN, {"languages": ["sw"]}),
        Endpoint(
            "POST",
            "/v1/decisions",
            SERVICE,
            {"user_id": str(learner), "action": "book:read", "resource_id": str(book)},
        ),
        Endpoint(
            "POST",
            "/v1/decisions/batch",
            SERVICE,
            {"requests": [{"user_id": str(learner), "action": "metrics:read"}]},
        ),
    ]


CALLERS: list[Role | str] = ["anonymous", *Role, "service"]


def expected(endpoint: Endpoint, caller: Role | str) -> str:
    if endpoint.who == PUBLIC:
        return "allowed"
    if caller == "anonymous":
        return "401"
    if endpoint.who == SERVICE:
        return "allowed" if caller == "service" else "403"
    if endpoint.who == ANY_USER:
        return "allowed"
    if endpoint.who == LEARNERS_ONLY:
        return "allowed" if caller == Role.LEARNER else "403"
    if caller == "service":
        return "403"
    assert isinstance(caller, Role)
    assert isinstance(endpoint.who, Role)
    return "allowed" if caller.at_least(endpoint.who) else "403"


async def test_every_endpoint_answers_every_caller_as_the_table_says(
    access: AccessHarness,
) -> None:
    learner = await access.account(Role.LEARNER)
    book = await access.put_book(published=True)
    table = endpoints(learner.id, book)
    mismatches = []
    for caller in CALLERS:
        for endpoint in table:
            if caller == "anonymous":
                headers: dict[str, str] = {}
            elif caller == "service":
                headers = await access.service_token()
            else:
                assert isinstance(caller, Role)
                headers = (await access.account(caller)).headers  # fresh: logout spends it
            body = endpoint.body
            if body == "register":
                body = {
                    "email": f"{uuid.uuid4().hex[:10]}@example.org",
                    "password": "a sturdy passphrase 42",
                    "display_name": "Table",
                    "birth_year": 1990,
                }
            response = await access.http.request(
                endpoint.method, endpoint.path, headers=headers, json=body
            )
            status = response.status_code
            # A public endpoint may say 401 about the credentials in its body
            # (login, refresh); only a 403 would refuse the caller.
            refusals = (403,) if endpoint.who == PUBLIC else (401, 403)
            got = str(status) if status in refusals else "allowed"
            assert status < 500, (endpoint, caller, response.text)
            if got != expected(endpoint, caller):
                mismatches.append(
                    f"{endpoint.method} {endpoint.path} as {caller}: "
                    f"expected {expected(endpoint, caller)}, got {status}"
                )
    assert mismatches == [], "\n".join(mismatches)


@pytest.mark.parametrize("caller", [r for r in Role if r is not Role.ADMIN])
async def test_no_role_below_admin_can_change_any_role(access: AccessHarness, caller: Role) -> None:
    actor = await access.account(caller)
    for target_role in Role:
        response = await access.http.put(
            f"/v1/users/{actor.id}/role", headers=actor.headers, json={"role": target_role.value}
        )
        assert response.status_code == 403
    me = await access.http.get("/v1/users/me", headers=actor.headers)
    assert me.json()["role"] == caller.value


async def test_review_languages_are_declared_audited_and_carried_by_the_decision(
    access: AccessHarness,
) -> None:
    reviewer = await access.account(Role.STORY_MANAGER)
    admin = await access.account(Role.ADMIN)
    volunteer = await access.account(Role.VOLUNTEER)

    async def review_decision() -> dict[str, Any]:
        response = await access.http.post(
            "/v1/decisions",
            headers=await access.service_token(),
            json={"user_id": str(reviewer.id), "action": "submission:review"},
        )
        body: dict[str, Any] = response.json()
        return body

    assert (await review_decision())["languages"] == []  # none declared: every language
    declared = await access.http.put(
        "/v1/users/me/review-languages",
        json={"languages": ["sw", "pt-BR", "sw"]},
        headers=reviewer.headers,
    )
    assert declared.status_code == 200, declared.text
    assert declared.json()["review_languages"] == ["sw", "pt-br"]  # once each
    me = await access.http.get("/v1/users/me", headers=reviewer.headers)
    assert me.json()["review_languages"] == ["sw", "pt-br"]
    assert (await review_decision())["languages"] == ["sw", "pt-br"]
    # Only story managers review; a bad tag is a 422.
    not_one = await access.http.put(
        f"/v1/users/{volunteer.id}/review-languages",
        json={"languages": ["sw"]},
        headers=admin.headers,
    )
    assert not_one.status_code == 409, not_one.text
    assert not_one.json()["type"].endswith("/not-a-reviewer")
    bad = await access.http.put(
        "/v1/users/me/review-languages",
        json={"languages": ["Swahili!"]},
        headers=reviewer.headers,
    )
    assert bad.status_code == 422
    log = await access.http.get(
        "/v1/users/audit-log", params={"subject_id": str(reviewer.id)}, headers=admin.headers
    )
    [entry] = [e for e in log.json()["items"] if e["action"] == "review_languages.set"]
    assert entry["after"] == {"review_languages": ["sw", "pt-br"], "ceiling": None}
    assert entry["actor_id"] == str(reviewer.id)


async def test_an_admins_review_languages_are_a_ceiling_the_reviewer_cannot_widen(
    access: AccessHarness,
) -> None:
    """#37 F8: `PUT /v1/users/me/review-languages []` lifted an ADMIN's restriction."""
    reviewer, admin = await access.account(Role.STORY_MANAGER), await access.account(Role.ADMIN)

    async def set_mine(languages: list[str]) -> httpx.Response:
        return await access.http.put(
            "/v1/users/me/review-languages",
            json={"languages": languages},
            headers=reviewer.headers,
        )

    restricted = await access.http.put(
        f"/v1/users/{reviewer.id}/review-languages",
        json={"languages": ["sw", "fr"]},
        headers=admin.headers,
    )
    assert restricted.status_code == 200, restricted.text
    for wider in ([], ["sw", "en"], ["en"]):
        body = assert_problem(await set_mine(wider), 403, "review-languages-restricted")
        assert body["allowed"] == ["sw", "fr"]
    narrowed = await set_mine(["fr"])
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["review_languages"] == ["fr"]
    # Narrowed, the ceiling stays: the reviewer may widen back within it only.
    assert (await set_mine(["sw", "fr"])).status_code == 200
    assert_problem(await set_mine([]), 403, "review-languages-restricted")
    # The ADMIN lifts it (an empty list: every language, no ceiling).
    lifted = await access.http.put(
        f"/v1/users/{reviewer.id}/review-languages", json={"languages": []}, headers=admin.headers
    )
    assert lifted.status_code == 200, lifted.text
    assert (await set_mine(["en"])).status_code == 200
