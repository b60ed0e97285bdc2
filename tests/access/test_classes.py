"""#19 classes over real HTTP: a teacher's classes and join codes, class accounts for
children without email, a whole class signing in from one school address, and
the limits that still stop a guessing run."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import update

from services.access.class_accounts import username_for
from services.access.join_codes import CODE_ALPHABET, normalize_code
from services.access.models import SchoolClass
from services.access.settings import AccessSettings
from shared.contracts.roles import Role
from tests.harness.access import (
    PASSWORD,
    SLOWED_SECONDS,
    AccessHarness,
    Account,
    access_settings,
    running_access,
)
from tests.support import ThreadedServer, assert_problem, tables_holding

# The defaults a deployment runs with, not the harness's raised ones.
DEFAULTS = AccessSettings.model_fields


def school_address() -> dict[str, str]:
    """A school's one public address, as the load balancer (trusted, on loopback)
    reports it: fresh per test, so no other test's sign-ins count against it."""
    return {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}


async def new_class(
    http: httpx.AsyncClient, teacher: Account, name: str = "Class 3B"
) -> dict[str, Any]:
    made = await http.post(
        "/v1/classes", json={"name": name, "grade": "3"}, headers=teacher.headers
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def add_learners(
    http: httpx.AsyncClient, teacher: Account, class_id: str, names: list[str]
) -> list[dict[str, Any]]:
    added = await http.post(
        f"/v1/classes/{class_id}/learners",
        json={"display_names": names},
        headers=teacher.headers,
    )
    assert added.status_code == 201, added.text
    return added.json()["learners"]  # type: ignore[no-any-return]


async def class_login(
    http: httpx.AsyncClient, code: str, username: str, password: str, **kw: Any
) -> httpx.Response:
    return await http.post(
        "/v1/auth/class-login",
        json={"code": code, "username": username, "password": password},
        **kw,
    )


def deployed_limits(
    access: AccessHarness, database_url: str, moto_url: str, **overrides: Any
) -> AccessSettings:
    """Access as deployed (its real sign-in limits), behind a trusted load balancer."""
    limits = {
        "login_failures_per_ip": DEFAULTS["login_failures_per_ip"].default,
        "class_login_failures_per_account": DEFAULTS["class_login_failures_per_account"].default,
    }
    return access_settings(
        database_url,
        moto_url,
        database_schema=access.settings.database_schema,
        trusted_proxies=["127.0.0.1/32"],
        **{**limits, **overrides},
    )


async def test_forty_learners_sign_in_at_once_from_one_school_address(
    database_url: str, moto_url: str, access: AccessHarness
) -> None:
    """With the deployed limits: a whole class at the same moment from one address
    gets in; a guessing run from that address is slowed at the limit, and the right
    password from the same address still gets in (#37 F2: it was 429 for 15 min)."""
    teacher = await access.account(Role.TEACHER)
    school = school_address()
    with running_access(
        deployed_limits(access, database_url, moto_url, login_slowed_seconds=SLOWED_SECONDS)
    ) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            made = await new_class(http, teacher)
            names = [f"Learner {n}" for n in range(40)]
            learners = await add_learners(http, teacher, made["id"], names)
            assert [learner["display_name"] for learner in learners] == names
            assert len({learner["username"] for learner in learners}) == 40
            signed_in = await asyncio.gather(
                *(
                    class_login(
                        http, made["join_code"], n["username"], n["password"], headers=school
                    )
                    for n in learners
                )
            )
            assert [s.status_code for s in signed_in] == [200] * 40, [
                s.text for s in signed_in if s.status_code != 200
            ][:3]
            me = await http.get(
                "/v1/users/me",
                headers={"Authorization": f"Bearer {signed_in[0].json()['access_token']}"},
            )
            assert me.json()["email"] is None
            assert me.json()["username"] == learners[0]["username"]
            assert me.json()["role"] == "LEARNER"

            # Guessing from the same address: failures count, up to the limit.
            limit = DEFAULTS["login_failures_per_ip"].default
            guesses = [
                (
                    await class_login(
                        http, made["join_code"], learners[n % 40]["username"], f"wrong{n}",
                        headers=school,
                    )
                ).status_code
                for n in range(limit + 2)
            ]  # fmt: skip
            assert guesses == [401] * limit + [429, 429]
            # The address is slowed: right after a guess, the next attempt waits...
            waits = await class_login(
                http, made["join_code"], learners[0]["username"], learners[0]["password"],
                headers=school,
            )  # fmt: skip
            assert_problem(waits, 429, "sign-ins-slowed")
            assert 0 < int(waits.headers["retry-after"]) <= SLOWED_SECONDS
            # ...and once it has waited, the right password gets in; so does the next
            # child's, at once (a success gives its turn back).
            await asyncio.sleep(int(waits.headers["retry-after"]) + 0.2)
            for learner in learners[:3]:
                late = await class_login(
                    http, made["join_code"], learner["username"], learner["password"],
                    headers=school,
                )  # fmt: skip
                assert late.status_code == 200, late.text
            # A guess takes the turn and keeps it for the interval.
            assert (
                await class_login(
                    http, made["join_code"], learners[5]["username"], "wrong", headers=school
                )
            ).status_code == 401
            assert (
                await class_login(
                    http, made["join_code"], learners[5]["username"], "wrong", headers=school
                )
            ).status_code == 429


async def test_successful_sign_ins_do_not_count_against_an_address(
    database_url: str, moto_url: str, access: AccessHarness
) -> None:
    """Email sign-ins too: only failures add up per address."""
    accounts = [await access.account(Role.LEARNER) for _ in range(4)]
    school = school_address()
    with running_access(
        deployed_limits(access, database_url, moto_url, login_failures_per_ip=3)
    ) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def sign_in(email: str, password: str) -> int:
                answer = await http.post(
                    "/v1/auth/login", json={"email": email, "password": password}, headers=school
                )
                return answer.status_code

            good = [await sign_in(a.email, PASSWORD) for a in accounts for _ in range(2)]
            bad = [await sign_in(a.email, "not the password 1") for a in accounts]
    assert good == [200] * 8
    assert bad == [401, 401, 401, 429]


async def test_a_class_account_is_slowed_after_its_failures_and_the_teacher_can_reset_it(
    database_url: str, moto_url: str, access: AccessHarness
) -> None:
    """A simple password is allowed, so failures are limited per class account from
    every address together. Past the limit the account is slowed, not paused: a
    classmate who knows its name can no longer keep the child out (#37 F3); the
    teacher's reset gives a new password and ends every session the old one opened."""
    teacher = await access.account(Role.TEACHER)
    with running_access(
        deployed_limits(
            access,
            database_url,
            moto_url,
            class_login_failures_per_account=3,
            login_slowed_seconds=SLOWED_SECONDS,
        )
    ) as url:
        # Every request from an address of its own, unless one is given.
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=school_address()) as http:
            made = await new_class(http, teacher)
            [amani] = await add_learners(http, teacher, made["id"], ["Amani"])
            code, username = made["join_code"], amani["username"]
            before = (await class_login(http, code, username, amani["password"])).json()
            tries = [
                (await class_login(http, code, username, "wrong", headers=school_address()))
                for _ in range(4)
            ]
            assert [t.status_code for t in tries] == [401, 401, 401, 429]
            assert_problem(tries[-1], 429, "sign-ins-slowed")
            # From anywhere, right after a guess: wait the interval...
            slowed = await class_login(http, code, username, amani["password"])
            assert_problem(slowed, 429, "sign-ins-slowed")
            # ...then the right password gets in, while guesses keep crawling.
            await asyncio.sleep(int(slowed.headers["retry-after"]) + 0.2)
            assert (await class_login(http, code, username, amani["password"])).status_code == 200
            assert (await class_login(http, code, username, "wrong")).status_code == 401
            assert (await class_login(http, code, username, "wrong")).status_code == 429
            # Another child of the class is not affected.
            [baraka] = await add_learners(http, teacher, made["id"], ["Baraka"])
            assert (await class_login(http, code, "baraka", baraka["password"])).status_code == 200

            reset = await http.post(
                f"/v1/classes/{made['id']}/learners/{amani['user_id']}/password",
                headers=teacher.headers,
            )
            assert reset.status_code == 200, reset.text
            new_password = reset.json()["password"]
            assert new_password != amani["password"]
            old = await class_login(http, code, username, amani["password"])
            assert_problem(old, 401, "invalid-credentials")
            assert (await class_login(http, code, username, new_password)).status_code == 200
            # The session of the old password ends: its access token is refused.
            stale = await http.get(
                "/v1/users/me", headers={"Authorization": f"Bearer {before['access_token']}"}
            )
            assert_problem(stale, 401)
            refreshed = await http.post(
                "/v1/auth/refresh", json={"refresh_token": before["refresh_token"]}
            )
            assert_problem(refreshed, 401)


async def test_a_teacher_sees_and_changes_only_their_own_classes(access: AccessHarness) -> None:
    teacher, other = await access.account(Role.TEACHER), await access.account(Role.TEACHER)
    learner, admin = await access.account(Role.LEARNER), await access.account(Role.ADMIN)
    mine = await new_class(access.http, teacher, "Mine")
    theirs = await new_class(access.http, other, "Theirs")
    [child] = await add_learners(access.http, teacher, mine["id"], ["Chiku"])

    listed = (await access.http.get("/v1/classes", headers=teacher.headers)).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    assert listed[0]["learner_count"] == 1
    for method, path, body in [
        ("GET", f"/v1/classes/{theirs['id']}", None),
        ("GET", f"/v1/classes/{theirs['id']}/learners", None),
        ("POST", f"/v1/classes/{theirs['id']}/learners", {"display_names": ["Spy"]}),
        ("POST", f"/v1/classes/{theirs['id']}/join-code", {}),
        ("POST", f"/v1/classes/{theirs['id']}/archive", None),
        ("GET", f"/v1/classes/{uuid.uuid4()}", None),
    ]:
        answer = await access.http.request(method, path, json=body, headers=teacher.headers)
        assert_problem(answer, 404)
    # Not another teacher's learner either.
    stolen = await access.http.post(
        f"/v1/classes/{theirs['id']}/learners/{child['user_id']}/password",
        headers=other.headers,
    )
    assert_problem(stolen, 404)
    # Learners see no class and no classmate.
    for path in ("/v1/classes", f"/v1/classes/{mine['id']}", f"/v1/classes/{mine['id']}/learners"):
        assert_problem(await access.http.get(path, headers=learner.headers), 403)
    made = await access.http.post("/v1/classes", json={"name": "x"}, headers=learner.headers)
    assert_problem(made, 403)
    assert_problem(await access.http.get("/v1/classes"), 401)
    # An ADMIN sees every class.
    every = (
        await access.http.get("/v1/classes", params={"limit": 100}, headers=admin.headers)
    ).json()
    ids: set[str] = {c["id"] for c in every["items"]}
    while every["next_cursor"]:
        every = (
            await access.http.get(
                "/v1/classes",
                params={"limit": 100, "cursor": every["next_cursor"]},
                headers=admin.headers,
            )
        ).json()
        ids |= {c["id"] for c in every["items"]}
    assert {mine["id"], theirs["id"]} <= ids
    members = await access.http.get(f"/v1/classes/{mine['id']}/learners", headers=admin.headers)
    assert [m["username"] for m in members.json()] == [child["username"]]


async def test_join_code_guesses_are_counted_per_account_and_per_address(
    database_url: str, moto_url: str, access: AccessHarness
) -> None:
    """#37 F1: 600 guessed codes in 2.6 s, never a 429. Wrong codes now count per
    learner and per address; past the limit the guesser is slowed to one code per
    interval, while the right code (waiting out one interval) still joins."""
    teacher = await access.account(Role.TEACHER)
    made = await new_class(access.http, teacher)
    guesser = await access.account(Role.LEARNER)
    with running_access(
        deployed_limits(
            access,
            database_url,
            moto_url,
            join_code_failures_per_account=4,
            join_code_failures_per_ip=6,
            login_slowed_seconds=SLOWED_SECONDS,
        )
    ) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def join(who: Account, code: str, address: dict[str, str]) -> httpx.Response:
                return await http.post(
                    "/v1/classes/join", json={"code": code}, headers={**who.headers, **address}
                )

            school = school_address()
            guesses = [(await join(guesser, f"ZZZZZ{n}", school)).status_code for n in range(6)]
            assert guesses == [404] * 4 + [429, 429]
            slowed = await join(guesser, made["join_code"], school)
            assert_problem(slowed, 429, "join-codes-slowed")
            # Another learner at that address is not slowed by this one's account...
            other = await access.account(Role.LEARNER)
            assert (await join(other, "ZZZZZ9", school)).status_code == 404
            assert (await join(other, "ZZZZZ8", school)).status_code == 404
            # ...until the address reaches its own limit (6 wrong codes from it).
            assert_problem(await join(other, "ZZZZZ7", school), 429, "join-codes-slowed")
            await asyncio.sleep(int(slowed.headers["retry-after"]) + 0.2)
            joined = await join(guesser, made["join_code"], school)
            assert joined.status_code == 200, joined.text
            # Anonymous class sign-ups count against the address too: the success gave
            # the turn back, so one guess is checked, and the next waits.
            signups = [
                await http.post(
                    "/v1/auth/class-register",
                    json={"code": f"ZZZZY{n}", "display_name": "Ghost", "password": "simba"},
                    headers=school,
                )
                for n in range(2)
            ]
            assert_problem(signups[0], 404, "unknown-class-code")
            assert_problem(signups[1], 429, "join-codes-slowed")


async def test_join_codes_join_rotate_expire_and_archive(access: AccessHarness) -> None:
    teacher, learner = await access.account(Role.TEACHER), await access.account(Role.LEARNER)
    made = await new_class(access.http, teacher)
    code = made["join_code"]
    assert len(code) == 6
    assert set(code) <= set(CODE_ALPHABET)
    assert made["join_code_expires_at"] is not None

    # As a child types it: lower case, a dash in the middle.
    typed = f"{code[:3].lower()}-{code[3:].lower()}"
    joined = await access.http.post(
        "/v1/classes/join", json={"code": typed}, headers=learner.headers
    )
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"class_id": made["id"], "name": "Class 3B", "grade": "3"}
    again = await access.http.post("/v1/classes/join", json={"code": code}, headers=learner.headers)
    assert again.status_code == 200  # joining twice changes nothing
    members = (
        await access.http.get(f"/v1/classes/{made['id']}/learners", headers=teacher.headers)
    ).json()
    assert [m["user_id"] for m in members] == [str(learner.id)]
    assert members[0]["username"] is None  # an email account joined: no class username
    # Staff do not join classes as learners.
    staff = await access.http.post("/v1/classes/join", json={"code": code}, headers=teacher.headers)
    assert_problem(staff, 403)

    # A class account made with the old code signs in with it until it is rotated.
    registered = await access.http.post(
        "/v1/auth/class-register",
        json={"code": code, "display_name": "Zawadi Mwangi", "password": "simba"},
    )
    assert registered.status_code == 201, registered.text
    zawadi = registered.json()["username"]
    assert re.fullmatch(r"zawadi\d{3}", zawadi), zawadi  # a number no other name tells
    assert (await class_login(access.http, code, zawadi, "simba")).status_code == 200

    rotated = await access.http.post(
        f"/v1/classes/{made['id']}/join-code", json={"expires_in_days": 7}, headers=teacher.headers
    )
    assert rotated.status_code == 200, rotated.text
    new_code = rotated.json()["join_code"]
    assert new_code != code
    assert rotated.json()["learner_count"] == 2
    expires = datetime.fromisoformat(rotated.json()["join_code_expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    old = await access.http.post("/v1/classes/join", json={"code": code}, headers=learner.headers)
    assert_problem(old, 404, "unknown-class-code")
    assert_problem(await class_login(access.http, code, zawadi, "simba"), 401)
    assert (await class_login(access.http, new_code, zawadi, "simba")).status_code == 200

    # Expired: nobody joins, but the code still names the class at sign-in.
    async with access.resources.session_factory() as session:
        await session.execute(
            update(SchoolClass)
            .where(SchoolClass.id == uuid.UUID(made["id"]))
            .values(join_code_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    late = await access.http.post(
        "/v1/auth/class-register",
        json={"code": new_code, "display_name": "Late", "password": "simba"},
    )
    # The same answer as a code that never was: a guesser cannot find expired codes.
    assert_problem(late, 404, "unknown-class-code")
    assert (await class_login(access.http, new_code, zawadi, "simba")).status_code == 200

    archived = await access.http.post(f"/v1/classes/{made['id']}/archive", headers=teacher.headers)
    assert archived.json()["archived_at"] is not None
    rotated_late = await access.http.post(
        f"/v1/classes/{made['id']}/join-code", headers=teacher.headers
    )
    assert_problem(rotated_late, 409, "class-archived")
    more = await access.http.post(
        f"/v1/classes/{made['id']}/learners",
        json={"display_names": ["Too late"]},
        headers=teacher.headers,
    )
    assert_problem(more, 409, "class-archived")
    listed = (await access.http.get("/v1/classes", headers=teacher.headers)).json()["items"]
    assert made["id"] not in [c["id"] for c in listed]
    with_archived = await access.http.get(
        "/v1/classes", params={"archived": "true"}, headers=teacher.headers
    )
    assert made["id"] in [c["id"] for c in with_archived.json()["items"]]


async def test_class_accounts_hold_no_email_and_take_turns_for_usernames(
    access: AccessHarness,
) -> None:
    teacher = await access.account(Role.TEACHER)
    made = await new_class(access.http, teacher)
    learners = await add_learners(
        access.http, teacher, made["id"], ["Amani", "amani", "Amélie Njoroge", "Маша", "Маша"]
    )
    assert [n["username"] for n in learners] == ["amani", "amani2", "amelie", "learner", "learner2"]
    assert all(len(n["password"]) >= 7 for n in learners)
    # Ten children registering themselves at once with one name: ten usernames.
    registered = await asyncio.gather(
        *(
            access.http.post(
                "/v1/auth/class-register",
                json={"code": made["join_code"], "display_name": "Juma", "password": "tembo"},
            )
            for _ in range(10)
        )
    )
    assert [r.status_code for r in registered] == [201] * 10, [r.text for r in registered][:2]
    # Each its own, and none that says who else is in the class (#37 F14: "juma2"
    # told a child registering that a Juma was there).
    names = [r.json()["username"] for r in registered]
    assert len(set(names)) == 10
    assert all(re.fullmatch(r"juma\d{3}", name) for name in names), names
    weak = await access.http.post(
        "/v1/auth/class-register",
        json={"code": made["join_code"], "display_name": "Juma", "password": "aaaa"},
    )
    assert_problem(weak, 422, "weak-password")
    unknown = await access.http.post(
        "/v1/auth/class-register",
        json={"code": "XXXXXX", "display_name": "Juma", "password": "tembo"},
    )
    assert_problem(unknown, 404, "unknown-class-code")
    # Unknown code, unknown username and wrong password: one answer.
    for code, username, password in [
        ("XXXXXX", "juma", "tembo"),
        (made["join_code"], "nobody", "tembo"),
        (made["join_code"], "juma", "wrong"),
    ]:
        answer = await class_login(access.http, code, username, password)
        assert_problem(answer, 401, "invalid-credentials")
    # A class account cannot be reached by email sign-in: a username is no email.
    by_email = await access.http.post("/v1/auth/login", json={"email": "juma", "password": "tembo"})
    assert_problem(by_email, 422, "email-not-accepted")
    # Removed from the class: the account stays (it still signs in).
    removed = await access.http.delete(
        f"/v1/classes/{made['id']}/learners/{learners[0]['user_id']}", headers=teacher.headers
    )
    assert removed.status_code == 204
    members = (
        await access.http.get(f"/v1/classes/{made['id']}/learners", headers=teacher.headers)
    ).json()
    assert learners[0]["user_id"] not in [m["user_id"] for m in members]
    again = await access.http.delete(
        f"/v1/classes/{made['id']}/learners/{learners[0]['user_id']}", headers=teacher.headers
    )
    assert_problem(again, 404)


def test_codes_and_usernames_as_children_type_them() -> None:
    assert normalize_code(" ab3-x9k ") == "AB3X9K"
    assert not set(CODE_ALPHABET) & set("0O1IL5S2Z8B")
    taken: set[str] = set()
    assert [username_for(n, taken) for n in ["Ñandú", "  ", "O'Neil Jr", "ñandu"]] == [
        "nandu",
        "learner",
        "oneil",
        "nandu2",
    ]


async def live_grants(access: AccessHarness, admin: Account, user_id: str) -> dict[str, str]:
    """book -> source of the learner's live entitlements (as an ADMIN sees them)."""
    page = await access.http.get(
        "/v1/entitlements", params={"user_id": user_id, "limit": 100}, headers=admin.headers
    )
    assert page.status_code == 200, page.text
    return {e["book_id"]: e["source"] for e in page.json()["items"]}


async def test_an_assignment_reaches_every_learner_and_takes_back_only_what_it_gave(
    access: AccessHarness,
) -> None:
    teacher, other_teacher = await access.account(Role.TEACHER), await access.account(Role.TEACHER)
    admin = await access.account(Role.ADMIN)
    book = str(await access.put_book(published=True, access="entitled"))
    unpublished = str(await access.put_book(published=False, access="entitled"))
    first, second = (
        await new_class(access.http, teacher),
        await new_class(access.http, other_teacher),
    )
    amani, baraka, chiku = await add_learners(
        access.http, teacher, first["id"], ["Amani", "Baraka", "Chiku"]
    )
    # Amani bought the book before it was assigned.
    bought = await access.http.post(
        "/v1/entitlements",
        json={"user_id": amani["user_id"], "book_id": book, "source": "purchase"},
        headers=admin.headers,
    )
    assert bought.status_code == 201, bought.text

    due = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    assigned = await access.http.post(
        f"/v1/classes/{first['id']}/assignments",
        json={"book_id": book, "due_at": due.isoformat()},
        headers=teacher.headers,
    )
    assert assigned.status_code == 201, assigned.text
    assert assigned.json()["granted"] == 2  # Amani keeps her purchase
    assignment = assigned.json()["id"]
    for refused, status, code in [
        ({"book_id": book}, 409, "already-assigned"),
        ({"book_id": unpublished}, 404, "book-not-published"),
        ({"book_id": book, "due_at": "2020-01-01T00:00:00Z"}, 422, None),
    ]:
        answer = await access.http.post(
            f"/v1/classes/{first['id']}/assignments", json=refused, headers=teacher.headers
        )
        assert_problem(answer, status, code)
    other = await access.http.post(
        f"/v1/classes/{first['id']}/assignments", json={"book_id": book},
        headers=other_teacher.headers,
    )  # fmt: skip
    assert_problem(other, 404)
    listed = await access.http.get(
        f"/v1/classes/{first['id']}/assignments", headers=teacher.headers
    )
    assert [a["book_id"] for a in listed.json()] == [book]
    assert await live_grants(access, admin, amani["user_id"]) == {book: "purchase"}
    assert await live_grants(access, admin, baraka["user_id"]) == {book: "class_assignment"}

    # The book comes first on the learner's shelf, with its due date.
    signed_in = await class_login(access.http, first["join_code"], "baraka", baraka["password"])
    baraka_headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    shelf = (await access.http.get("/v1/users/me/books", headers=baraka_headers)).json()
    assert shelf[0]["book_id"] == book
    assert shelf[0]["assigned"] is True
    assert shelf[0]["reason"] == "entitled"
    assert datetime.fromisoformat(shelf[0]["due_at"]) == due
    assert not any(b["assigned"] for b in shelf[1:])

    # A child who joins later gets it too.
    late = await access.http.post(
        "/v1/auth/class-register",
        json={"code": first["join_code"], "display_name": "Dalia", "password": "twiga"},
    )
    assert late.status_code == 201, late.text
    assert await live_grants(access, admin, late.json()["user_id"]) == {book: "class_assignment"}

    # What a class gave is taken back through the class, not one by one.
    [from_class] = (
        await access.http.get(
            "/v1/entitlements", params={"user_id": chiku["user_id"]}, headers=teacher.headers
        )
    ).json()["items"]
    direct = await access.http.delete(f"/v1/entitlements/{from_class['id']}", headers=admin.headers)
    assert_problem(direct, 409, "from-class-assignment")

    # Baraka is also in another teacher's class that was given the same book.
    joined = await access.http.post(
        "/v1/classes/join", json={"code": second["join_code"]}, headers=baraka_headers
    )
    assert joined.status_code == 200, joined.text
    also = await access.http.post(
        f"/v1/classes/{second['id']}/assignments", json={"book_id": book},
        headers=other_teacher.headers,
    )  # fmt: skip
    assert also.json()["granted"] == 0  # Baraka has it already

    # Out of the first class: Baraka keeps the book through the second; Amani her purchase.
    for learner in (baraka, amani):
        out = await access.http.delete(
            f"/v1/classes/{first['id']}/learners/{learner['user_id']}", headers=teacher.headers
        )
        assert out.status_code == 204, out.text
    assert await live_grants(access, admin, baraka["user_id"]) == {book: "class_assignment"}
    assert await live_grants(access, admin, amani["user_id"]) == {book: "purchase"}

    # The assignment taken back: Chiku loses the book; Baraka does not.
    taken = await access.http.delete(
        f"/v1/classes/{first['id']}/assignments/{assignment}", headers=teacher.headers
    )
    assert taken.status_code == 204, taken.text
    assert await live_grants(access, admin, chiku["user_id"]) == {}
    assert await live_grants(access, admin, baraka["user_id"]) == {book: "class_assignment"}
    revoked = [e.data["user_id"] for e in await access.outbox("entitlement.revoked")]
    assert chiku["user_id"] in revoked
    again = await access.http.delete(
        f"/v1/classes/{first['id']}/assignments/{assignment}", headers=teacher.headers
    )
    assert_problem(again, 404)
    assert (
        await access.http.get(f"/v1/classes/{first['id']}/assignments", headers=teacher.headers)
    ).json() == []


async def test_an_erased_learner_is_gone_from_access_and_signed_out_everywhere(
    access: AccessHarness,
) -> None:
    teacher, other = await access.account(Role.TEACHER), await access.account(Role.TEACHER)
    admin = await access.account(Role.ADMIN)
    made = await new_class(access.http, teacher)
    book = str(await access.put_book(published=True, access="entitled"))
    assigned = await access.http.post(
        f"/v1/classes/{made['id']}/assignments", json={"book_id": book}, headers=teacher.headers
    )
    assert assigned.status_code == 201, assigned.text
    name = f"Wanjiru Kamau {uuid.uuid4().hex[:6]}"
    [child] = await add_learners(access.http, teacher, made["id"], [name])
    tokens = (
        await class_login(access.http, made["join_code"], child["username"], child["password"])
    ).json()
    child_headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await access.http.get("/v1/users/me", headers=child_headers)).status_code == 200
    assert await tables_holding(access.resources.session_factory, name) == ["users.display_name"]

    # Not by another teacher, not a staff account, not by a learner.
    for who, user_id, status in [
        (other, child["user_id"], 404),
        (teacher, str(teacher.id), 404),
        (admin, str(teacher.id), 409),
        (await access.account(Role.LEARNER), child["user_id"], 403),
    ]:
        refused = await access.http.delete(f"/v1/users/{user_id}", headers=who.headers)
        assert_problem(refused, status)

    erased = await access.http.delete(f"/v1/users/{child['user_id']}", headers=teacher.headers)
    assert erased.status_code == 204, erased.text
    assert await tables_holding(access.resources.session_factory, name, child["username"]) == []
    # Signed out at once, and nothing left to sign in to.
    assert_problem(await access.http.get("/v1/users/me", headers=child_headers), 401)
    refreshed = await access.http.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(refreshed, 401)
    login = await class_login(access.http, made["join_code"], child["username"], child["password"])
    assert_problem(login, 401)
    [event] = [e for e in await access.outbox("user.erased") if e.subject == child["user_id"]]
    assert event.data["erased_by"] == str(teacher.id)
    members = await access.http.get(f"/v1/classes/{made['id']}/learners", headers=teacher.headers)
    assert members.json() == []
    again = await access.http.delete(f"/v1/users/{child['user_id']}", headers=teacher.headers)
    assert_problem(again, 404)

    # An ADMIN erases a learner with an email too.
    learner = await access.account(Role.LEARNER)
    by_admin = await access.http.delete(f"/v1/users/{learner.id}", headers=admin.headers)
    assert by_admin.status_code == 204, by_admin.text
    assert await tables_holding(access.resources.session_factory, learner.email) == []


class StandInMetrics:
    """A metrics service that answers the class figures late, or not at all (an edge
    this test controls: how long it takes and what it says)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.status = 404
        self.app = FastAPI()

        @self.app.get("/v1/metrics/classes/{class_id}")
        async def figures(class_id: str) -> JSONResponse:
            await asyncio.sleep(self.delay)
            return JSONResponse({"detail": "no figures"}, status_code=self.status)


async def test_the_class_report_is_a_fast_503_when_metrics_cannot_answer(
    access: AccessHarness, database_url: str, moto_url: str
) -> None:
    """#19: the report's figures come from metrics; down, slow or refusing, the
    report is a 503 with Retry-After within the deadline (JSON and CSV alike),
    never a report of zeros. A class metrics has not heard of is all not-opened."""
    teacher = await access.account(Role.TEACHER)
    school_class = await new_class(access.http, teacher)
    await add_learners(access.http, teacher, school_class["id"], ["Wanjiru"])
    path = f"/v1/classes/{school_class['id']}/progress"
    # Nothing serves at this module's metrics address.
    for query in ({}, {"format": "csv"}):
        down = await access.http.get(path, headers=teacher.headers, params=query)
        assert_problem(down, 503, "metrics-unavailable")
        assert down.headers["retry-after"] == "2"

    peer = StandInMetrics()
    with ThreadedServer(peer.app) as metrics:
        settings = access_settings(
            database_url,
            moto_url,
            database_schema=access.settings.database_schema,
            metrics_url=metrics.url,
            metrics_timeout_seconds=0.5,
        )
        with running_access(settings) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                # Not heard of yet: every learner, not opened; no figures time.
                fresh = await http.get(path, headers=teacher.headers)
                assert fresh.status_code == 200, fresh.text
                assert fresh.json()["figures_as_of"] is None
                assert fresh.json()["learners"] == 1
                # Too slow: the deadline, not the wait.
                peer.delay = 5.0
                started = asyncio.get_running_loop().time()
                late = await http.get(path, headers=teacher.headers)
                assert asyncio.get_running_loop().time() - started < 2.0
                assert_problem(late, 503, "metrics-unavailable")
                # Refusing (metrics and access disagree about the caller): an outage.
                peer.delay, peer.status = 0.0, 403
                assert_problem(await http.get(path, headers=teacher.headers), 503)
