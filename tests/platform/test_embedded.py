"""`stories up`: the whole platform in one command, with nothing else set up."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.metrics.models import RecordedEvent
from shared.bus.outbox import record_event
from shared.clients.db import create_engine, create_session_factory, unit_of_work
from shared.contracts.events import BookUnpublished
from tests.content.pdf_samples import javascript_on_open
from tests.harness.content import PDF, STORY
from tests.harness.embedded import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SERVICE_OFFSETS,
    STARTUP_SECONDS,
    free_port_run,
    publish_free_book,
    running_platform,
    starts_timeout,
)
from tests.platform.screenshot import layout_mismatch
from tests.support import eventually, wait_until

# Every test here starts the platform once (the module's fixture counts against the
# first test that uses it), except where a test says it starts it twice.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(starts_timeout(1))]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    workdir = tmp_path_factory.mktemp("embedded")
    with running_platform(workdir, {"METRICS_DASHBOARD_REFRESH_SECONDS": "5"}) as base:
        yield base, workdir


def _fully_ready(url: str) -> bool:
    """Ready with every check ok (the Redis mirrors subscribe just after start)."""
    return bool(httpx.get(f"{url}/readyz", timeout=5).json()["status"] == "ready")


def test_every_service_is_ready_and_documents_its_api(platform: tuple[int, Path]) -> None:
    base, _ = platform
    for name, offset in SERVICE_OFFSETS.items():
        url = f"http://127.0.0.1:{base + offset}"
        wait_until(partial(_fully_ready, url), timeout=10, what=f"{name} fully ready")
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.json()["checks"] == {
            "database": "ok",
            "redis": "ok",
            "redis_mirrors": "ok",
            "aws": "ok",
        }, name
        openapi = httpx.get(f"{url}/openapi.json", timeout=5).json()
        assert openapi["info"]["title"] == f"1001 Stories — {name}"
        assert httpx.get(f"{url}/docs", timeout=5).status_code == 200


def test_every_api_fetches_its_credentials_quietly_once_access_listens(
    platform: tuple[int, Path],
) -> None:
    """All four APIs start at once, so the others ask access for its keys and their
    tokens before it listens: they ask again until it answers, without a warning
    for a newcomer to worry about."""
    _, workdir = platform

    def prefetched() -> list[str]:
        lines = (workdir / "up.log").read_text().splitlines()
        return [line for line in lines if "credentials prefetched" in line]

    wait_until(lambda: len(prefetched()) == 3, timeout=30, what="three prefetches logged")
    for line in prefetched():
        assert "signing_keys=True" in line, line
        assert "service_token=True" in line, line
    log = (workdir / "up.log").read_text()
    assert "jwks fetch failed" not in log
    assert "credentials left to first use" not in log


async def test_an_event_from_one_services_outbox_reaches_another_services_consumer(
    platform: tuple[int, Path],
) -> None:
    _, workdir = platform
    data = workdir / "data"
    content = create_engine(f"sqlite+aiosqlite:///{data / 'content.sqlite3'}", schema="content")
    metrics = create_engine(f"sqlite+aiosqlite:///{data / 'metrics.sqlite3'}", schema="metrics")
    try:
        async with unit_of_work(create_session_factory(content)) as session:
            event = record_event(session, BookUnpublished(book_id=uuid.uuid4()))

        async def logged_by_metrics() -> bool:
            async with metrics.connect() as connection:
                found = await connection.scalar(
                    select(RecordedEvent.event_type).where(RecordedEvent.event_id == event.id)
                )
            return found == "book.unpublished"

        await eventually(logged_by_metrics, timeout=30, what="the event in metrics' log")
    finally:
        await content.dispose()
        await metrics.dispose()


async def test_a_childs_sign_up_mails_the_parent_a_link_that_works_through_the_gateway(
    platform: tuple[int, Path],
) -> None:
    """#41 on the embedded run: the parent's mail lands in `.stories/mail/` (a real
    SMTP server on loopback), and its link, through the one origin, lets the child in."""
    from email import message_from_bytes, policy

    base, workdir = platform
    gateway = f"http://127.0.0.1:{base - 1}"
    child = f"child-{uuid.uuid4().hex[:8]}@example.org"
    parent = f"parent-{uuid.uuid4().hex[:8]}@example.org"
    mail = workdir / "data" / "mail"
    async with httpx.AsyncClient(timeout=10) as http:
        made = await http.post(
            f"{gateway}/v1/auth/register",
            json={
                "email": child,
                "password": "a sturdy passphrase 42",
                "display_name": "Neema",
                "birth_year": datetime.now(UTC).year - 8,
                "parent_email": parent,
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["consent"] == "pending"

        def the_mail() -> Any:
            for path in sorted(mail.glob("*.eml")) if mail.exists() else []:
                message = message_from_bytes(path.read_bytes(), policy=policy.default)
                if message["To"] == parent:
                    return message
            return None

        await eventually(lambda: the_mail() is not None, timeout=30, what="the consent mail")
        text = the_mail().get_body(("plain",)).get_content()
        [link] = [w for w in text.split() if w.startswith(f"{gateway}/v1/auth/consents/")]
        login = {"email": child, "password": "a sturdy passphrase 42"}
        assert (await http.post(f"{gateway}/v1/auth/login", json=login)).status_code == 403
        agreed = await http.post(link, json={"answer": "agree"})
        assert agreed.status_code == 200, agreed.text
        assert (await http.post(f"{gateway}/v1/auth/login", json=login)).status_code == 200


async def test_a_story_goes_from_draft_to_the_catalog_on_the_embedded_run(
    platform: tuple[int, Path],
) -> None:
    """Content asks access (HTTP) for decisions and uploads go to the in-process emulator."""
    base, _ = platform
    content = f"http://127.0.0.1:{base}"
    access = f"http://127.0.0.1:{base + 1}"
    async with httpx.AsyncClient(timeout=10) as http:
        login = await http.post(
            f"{access}/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        me = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await http.post(f"{content}/v1/submissions", json=STORY, headers=me)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        ticket = (await http.post(f"{content}/v1/submissions/{sid}/upload", headers=me)).json()
        uploaded = await http.post(
            ticket["url"],
            data=ticket["fields"],
            files={"file": ("s.pdf", PDF, "application/pdf")},
        )
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        submitted = await http.post(
            f"{content}/v1/submissions/{sid}/submit", headers={**me, "If-Match": '"1"'}
        )
        assert submitted.status_code == 200, submitted.text
        # The admin wrote it, so the admin may not review it: access and content agree.
        refused = await http.post(
            f"{content}/v1/submissions/{sid}/review",
            json={"decision": "approve"},
            headers={**me, "If-Match": submitted.headers["ETag"]},
        )
        assert refused.status_code == 403
        catalog = await http.get(f"{content}/v1/books")
        assert catalog.status_code == 200
        assert catalog.json() == {"items": [], "next_cursor": None}


async def test_a_refused_manuscript_is_a_quick_422_with_its_reason_on_the_embedded_run(
    platform: tuple[int, Path],
) -> None:
    """#37 F5: on SQLite the refusal waited 30 s for its own request's write lock, then
    was a 500 with no reason in the history, and other volunteers' writes waited."""
    base, _ = platform
    content, access = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    async with httpx.AsyncClient(timeout=10) as http:
        me = await _sign_in(http, access)
        sid, ticket = await _draft_and_ticket(http, content, me)
        uploaded = await http.post(
            ticket["url"],
            data=ticket["fields"],
            files={"file": ("s.pdf", javascript_on_open(), "application/pdf")},
        )
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        submitting = asyncio.create_task(
            http.post(f"{content}/v1/submissions/{sid}/submit", headers={**me, "If-Match": '"1"'})
        )
        meanwhile = await http.post(
            f"{content}/v1/submissions", json={**STORY, "title": "Meanwhile"}, headers=me
        )
        assert meanwhile.status_code == 201, meanwhile.text
        refused = await submitting
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/manuscript-active-content")
        history = (await http.get(f"{content}/v1/submissions/{sid}/history", headers=me)).json()
        assert history[-1]["notes"].startswith("Manuscript refused (manuscript-active-content)")


async def test_the_embedded_emulator_holds_a_checked_manuscript_as_s3_would(
    platform: tuple[int, Path],
) -> None:
    """#37 F15: the emulator took any credentials and ignored the upload form's
    policy, so an author re-posted the form with the checked copy's key (learned
    from their own link) and the reviewer then read a JavaScript PDF."""
    base, _ = platform
    content, access = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    async with httpx.AsyncClient(timeout=10) as http:
        me = await _sign_in(http, access)
        sid, ticket = await _draft_and_ticket(http, content, me)
        pdf = {"file": ("s.pdf", PDF, "application/pdf")}
        uploaded = await http.post(ticket["url"], data=ticket["fields"], files=pdf)
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        submitted = await http.post(
            f"{content}/v1/submissions/{sid}/submit", headers={**me, "If-Match": '"1"'}
        )
        assert submitted.status_code == 200, submitted.text
        link = (await http.get(f"{content}/v1/submissions/{sid}/manuscript", headers=me)).json()
        pinned = httpx.URL(link["url"]).path.split("/", 2)[2]  # /bucket/key
        assert pinned.startswith("checked/")
        evil = {"file": ("s.pdf", javascript_on_open(), "application/pdf")}
        for change in ({"key": pinned}, {"Content-Type": "text/html"}):
            again = await http.post(ticket["url"], data={**ticket["fields"], **change}, files=evil)
            assert again.status_code == 403, again.text
        assert (await http.get(link["url"])).content == PDF
        # Credentials made up by whoever reaches the emulator sign nothing.
        stranger = httpx.get(
            httpx.URL(ticket["url"]).copy_with(path="/"),
            headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=embedded/20261206/us-east-1/s3/"
                "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
                "X-Amz-Date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            },
        )
        assert stranger.status_code == 403, stranger.text


@pytest.mark.timeout(starts_timeout(2))
def test_files_survive_a_restart_of_the_embedded_run(tmp_path: Path) -> None:
    """#16.3: after a restart the database still pointed at a manuscript the in-memory
    S3 had forgotten (403 SignatureDoesNotMatch). The files are kept beside the
    databases now: upload, submit, stop, start, download."""
    with running_platform(tmp_path) as base:
        content, access = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
        with httpx.Client(timeout=10) as http:
            me = _sign_in_sync(http, access)
            sid = http.post(f"{content}/v1/submissions", json=STORY, headers=me).json()["id"]
            ticket = http.post(f"{content}/v1/submissions/{sid}/upload", headers=me).json()
            uploaded = http.post(
                ticket["url"],
                data=ticket["fields"],
                files={"file": ("s.pdf", PDF, "application/pdf")},
            )
            assert uploaded.status_code in (200, 201, 204), uploaded.text
            submitted = http.post(
                f"{content}/v1/submissions/{sid}/submit", headers={**me, "If-Match": '"1"'}
            )
            assert submitted.status_code == 200, submitted.text
    assert (tmp_path / "data" / "s3.pickle").exists()
    with running_platform(tmp_path) as base:
        content, access = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
        with httpx.Client(timeout=10) as http:
            me = _sign_in_sync(http, access)
            link = http.get(f"{content}/v1/submissions/{sid}/manuscript", headers=me)
            assert link.status_code == 200, link.text
            download = http.get(link.json()["url"])
            assert download.status_code == 200, download.text[:300]
            assert download.content == PDF


def _sign_in_sync(http: httpx.Client, access: str) -> dict[str, str]:
    login = http.post(
        f"{access}/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _draft_and_ticket(
    http: httpx.AsyncClient, content: str, me: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """A new draft's id and an upload ticket for its manuscript."""
    sid = (await http.post(f"{content}/v1/submissions", json=STORY, headers=me)).json()["id"]
    ticket = (await http.post(f"{content}/v1/submissions/{sid}/upload", headers=me)).json()
    return str(sid), ticket


async def _sign_in(http: httpx.AsyncClient, access: str) -> dict[str, str]:
    login = await http.post(
        f"{access}/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_the_api_docs_render_offline_in_chromium(platform: tuple[int, Path]) -> None:
    """#16.5: /docs loaded Swagger UI from a CDN, blank offline and on school networks
    that block CDNs. Here everything but the service itself is refused."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"SKIPPED LOUDLY: no {CHROMIUM}; `make test` installs Debian's chromium")
    from playwright.async_api import Route, async_playwright

    base, _ = platform
    access = f"http://127.0.0.1:{base + SERVICE_OFFSETS['access']}"
    refused: list[str] = []

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(access):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.route("**/*", only_the_service)
            await page.goto(f"{access}/docs")
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(state="visible", timeout=20_000)
            assert "1001 Stories" in await title.inner_text()
            # The operations are listed (the OpenAPI document was fetched and drawn).
            await page.locator(".opblock").first.wait_for(state="visible", timeout=20_000)
            await page.goto(f"{access}/redoc")
            await page.locator("h1").first.wait_for(state="visible", timeout=20_000)
            assert "1001 Stories" in await page.locator("h1").first.inner_text()
        finally:
            await browser.close()
    # All ReDoc's bundle fetches from elsewhere is its "powered by" badge image; the
    # page is whole without it. Swagger UI fetches nothing at all.
    assert set(refused) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, refused


async def test_the_dashboard_charts_real_figures_in_chromium_on_a_phone(
    platform: tuple[int, Path], tmp_path: Path
) -> None:
    """Signs in through the page's form, then every tile and chart shows what the
    API says, and the page redraws by itself when the figures move."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"SKIPPED LOUDLY: no {CHROMIUM}; `make test` installs Debian's chromium")
    from playwright.async_api import async_playwright

    base, _ = platform
    content, access, metrics = (f"http://127.0.0.1:{base + o}" for o in (0, 1, 3))
    async with httpx.AsyncClient(timeout=10) as http:
        me = await _sign_in(http, access)
        created = await http.post(f"{content}/v1/submissions", json=STORY, headers=me)
        assert created.status_code == 201, created.text

        async def overview() -> dict[str, Any]:
            response = await http.get(f"{metrics}/v1/metrics/overview", headers=me)
            assert response.status_code == 200, response.text
            figures: dict[str, Any] = response.json()
            return figures

        async def drafts() -> int:
            return int((await overview())["submissions_by_status"].get("DRAFT", 0))

        await eventually(drafts, timeout=30, what="submission.created in metrics")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                missing: list[str] = []
                page.on(
                    "response",
                    lambda r: missing.append(r.url) if r.status >= 400 else None,
                )
                await page.goto(f"{metrics}/dashboard")
                # #16.4: what is *visible*, not only what is in the DOM. Before
                # sign-in: the form, and no empty tiles or blank chart frames.
                sign_in, figures = page.locator("form#sign-in"), page.locator("main#figures")
                await sign_in.wait_for(state="visible", timeout=10_000)
                assert await figures.is_hidden()
                shots = [await _layout_shot(page, "dashboard-signed-out", tmp_path)]
                await page.fill("input[name=email]", ADMIN_EMAIL)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit]")
                await _until(page, "() => window.dashboard.lastUpdated !== null")
                # After: the figures, and the form gone (CSS grid overrode `hidden`).
                assert await figures.is_visible()
                assert await sign_in.is_hidden()
                assert missing == []  # the favicon too: nothing answered 404

                # The page and the API agree once the page has refreshed after the
                # last event in flight (the form's own login among them).
                seen: dict[str, Any] = {}

                async def page_agrees_with_api() -> bool:
                    seen["expected"] = await overview()
                    seen["shown"] = await page.evaluate(TILES_AND_CHARTS)
                    api, tiles = seen["expected"], seen["shown"]["tiles"]
                    statuses = list(api["submissions_by_status"].values())
                    return bool(
                        api["logins"]["today"] >= 2
                        and tiles["logins.today"] == str(api["logins"]["today"])
                        and tiles["review_backlog"] == str(api["review_backlog"])
                        and seen["shown"]["charts"]["chart-status"]["values"] == statuses
                    )

                await eventually(page_agrees_with_api, timeout=30, what="page and API agree")
                shots.append(await _layout_shot(page, "dashboard-signed-in", tmp_path))
                assert shots == [None, None], shots
                expected, shown = seen["expected"], seen["shown"]
                assert errors == []
                assert shown["tiles"]["review_backlog"] == str(expected["review_backlog"])
                assert shown["tiles"]["published_books"] == str(expected["published_books"])
                assert shown["tiles"]["logins.today"] == str(expected["logins"]["today"])
                assert int(shown["tiles"]["logins.today"]) >= 2  # the bootstrap's and ours
                statuses = expected["submissions_by_status"]
                assert shown["charts"]["chart-status"] == {
                    "labels": list(statuses),
                    "values": list(statuses.values()),
                }
                roles = expected["users_by_role"]
                assert shown["charts"]["chart-roles"]["values"] == list(roles.values())
                assert roles.get("ADMIN", 0) >= 1
                assert all(painted > 100 for painted in shown["painted"].values()), shown
                # The story families: the coverage matrix and the reading tables, drawn
                # from the API's answers (the tile counts the matrix's missing cells).
                tables = await page.evaluate(
                    "() => ['coverage', 'families', 'languages'].map("
                    "(id) => document.querySelectorAll(`#${id} th`)[0]?.textContent)"
                )
                assert tables == ["Story", "Story", "Language"]
                coverage = (await http.get(f"{metrics}/v1/metrics/coverage", headers=me)).json()
                gaps = sum(len(family["missing"]) for family in coverage["families"])
                assert shown["tiles"]["missing_translations"] == str(gaps)
                assert shown["overflow"] <= 0, "the page scrolls sideways on a phone"

                # A second submission: the page shows it at its next refresh, untouched.
                before = statuses.get("DRAFT", 0)
                again = await http.post(f"{content}/v1/submissions", json=STORY, headers=me)
                assert again.status_code == 201
                await _until(
                    page,
                    "(n) => { const c = window.dashboard.charts['chart-status'];"
                    " const i = c.data.labels.indexOf('DRAFT');"
                    " return i >= 0 && c.data.datasets[0].data[i] === n; }",
                    before + 1,
                )
            finally:
                await browser.close()


async def _staff(http: httpx.AsyncClient, access: str, admin: dict[str, str], role: str) -> Any:
    """A new account given `role` by the admin, signed in afterwards (its token
    carries the role)."""
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.org"
    password = "a sturdy passphrase 42"
    made = await http.post(
        f"{access}/v1/auth/register",
        json={
            "email": email,
            "password": password,
            "display_name": role.title(),
            "birth_year": 1990,
        },
    )
    assert made.status_code == 201, made.text
    user_id = made.json()["id"]
    given = await http.put(f"{access}/v1/users/{user_id}/role", json={"role": role}, headers=admin)
    assert given.status_code == 200, given.text
    login = await http.post(f"{access}/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return email, password, {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_a_teacher_sees_their_class_reading_on_the_dashboard_in_chromium(
    platform: tuple[int, Path],
) -> None:
    """#19: a teacher signs in on the dashboard and sees their class, not the
    platform's figures: each assigned book, how many opened and finished it, and
    who has not started, by name (from access's report, on a phone)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"SKIPPED LOUDLY: no {CHROMIUM}; `make test` installs Debian's chromium")
    from playwright.async_api import async_playwright

    base, _ = platform
    content, access, delivery, metrics = (f"http://127.0.0.1:{base + o}" for o in (0, 1, 2, 3))
    async with httpx.AsyncClient(timeout=10) as http:
        admin = await _sign_in(http, access)
        _, _, reviewer = await _staff(http, access, admin, "STORY_MANAGER")
        email, password, teacher = await _staff(http, access, admin, "TEACHER")
        book_id = await publish_free_book(http, content, admin, reviewer)
        made = await http.post(f"{access}/v1/classes", json={"name": "Class 2A"}, headers=teacher)
        assert made.status_code == 201, made.text
        school_class = made.json()
        names = ["Amani", "Baraka", "<b>Chausiku</b>"]  # a name is text, never markup
        added = await http.post(
            f"{access}/v1/classes/{school_class['id']}/learners",
            json={"display_names": names},
            headers=teacher,
        )
        assert added.status_code == 201, added.text
        amani = added.json()["learners"][0]

        async def assigned() -> bool:
            answer = await http.post(
                f"{access}/v1/classes/{school_class['id']}/assignments",
                json={"book_id": book_id},
                headers=teacher,
            )
            return answer.status_code == 201

        await eventually(assigned, timeout=30, what="book.published in access")
        signed_in = await http.post(
            f"{access}/v1/auth/class-login",
            json={
                "code": school_class["join_code"],
                "username": amani["username"],
                "password": amani["password"],
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        child = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

        async def opened() -> bool:
            answer = await http.post(
                f"{delivery}/v1/deliveries", json={"book_id": book_id}, headers=child
            )
            return answer.status_code == 200

        await eventually(opened, timeout=30, what="the book in delivery")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{metrics}/dashboard")
                await page.locator("form#sign-in").wait_for(state="visible", timeout=10_000)
                await page.fill("input[name=email]", email)
                await page.fill("input[name=password]", password)
                await page.click("button[type=submit]")
                row = page.locator(f"#class-{school_class['id']} tr").nth(1)

                seen: dict[str, Any] = {}

                async def shows_the_reading() -> bool:
                    seen["status"] = await page.locator("#status").inner_text()
                    if not await row.count():
                        return False
                    seen["cells"] = await row.locator("td").all_inner_texts()
                    # Opened, finished, and who has not started: by display name.
                    expected = ["1 / 3", "0 (0 %)", "<b>Chausiku</b>, Baraka"]
                    return bool(seen["cells"][2:] == expected)

                try:
                    await eventually(shows_the_reading, timeout=30, what="the class view")
                except TimeoutError as exc:
                    raise AssertionError((seen, errors)) from exc
                assert await page.locator("main#figures").is_hidden()
                assert await page.locator("main#classes").is_visible()
                heading = await page.locator(".class-head h2").inner_text()
                assert heading.startswith("Class 2A · 3 learners")
                assert await page.locator("#classes b").count() == 0
                overflow = await page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 0, "the page scrolls sideways on a phone"
                assert errors == []
            finally:
                await browser.close()


async def _layout_shot(page: Any, name: str, out_dir: Path) -> str | None:
    """The phone's screen, compared with the expected layout; what moves from run to
    run (figures, charts, the status line, the review queue) masked."""
    masked = [page.locator(s) for s in ("[data-figure]", "canvas", "#status", "#oldest-review")]
    shot = await page.screenshot(animations="disabled", caret="hide", mask=masked)
    return layout_mismatch(shot, name, out_dir)


async def _until(page: Any, predicate: str, arg: object = None, timeout: float = 30) -> None:
    """Poll the page (Playwright's wait_for_function would need 'unsafe-eval', which the
    dashboard's Content-Security-Policy rightly refuses)."""
    await eventually(lambda: page.evaluate(predicate, arg), timeout=timeout, what=predicate)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What the page shows: tile texts, each chart's data, and how many pixels each
# canvas painted (a chart that drew nothing has none).
TILES_AND_CHARTS = """() => {
  const tiles = {};
  for (const cell of document.querySelectorAll('.tile [data-figure]')) {
    tiles[cell.dataset.figure] = cell.textContent.replace(/[^0-9]/g, '');
  }
  const charts = {}, painted = {};
  for (const [id, chart] of Object.entries(window.dashboard.charts)) {
    charts[id] = { labels: chart.data.labels, values: chart.data.datasets[0].data };
    const canvas = document.getElementById(id);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) count++;
    painted[id] = count;
  }
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  return { tiles, charts, painted, overflow };
}"""


def _up_until_ready_then_ctrl_c(tmp_path: Path, **extra_env: str) -> tuple[int, int, str]:
    """`stories up` until every API answers, then Ctrl-C: (base port, exit code, output).
    The output goes to a file, not a pipe nobody reads while waiting: a full pipe would
    block the platform's logging and so the platform."""
    base = free_port_run(5) + 1  # the gateway takes the port before content
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "AWS_ENDPOINT_URL"}}
    env.pop("LOG_JSON", None)
    output_path = tmp_path / "up.log"
    with output_path.open("w") as output_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stories.cli",
                "up",
                "--base-port",
                str(base),
                "--aws-port",
                str(free_port_run(1)),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            env={**env, **extra_env},
            stdout=output_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            try:
                wait_until(
                    lambda: _answers(f"http://127.0.0.1:{base + 3}/healthz"),
                    timeout=STARTUP_SECONDS,
                    what="metrics",
                )
            except TimeoutError as exc:
                tail = output_path.read_text()[-4000:]
                raise TimeoutError(f"{exc}; stories up said:\n{tail}") from exc
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    return base, process.returncode, output_path.read_text()


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    base, returncode, output = _up_until_ready_then_ctrl_c(tmp_path)
    assert returncode == 0, output
    assert "1001 Stories is running" in output
    assert f"http://127.0.0.1:{base + 1}/docs" in output
    assert f"gateway   http://127.0.0.1:{base - 1}" in output
    assert "Traceback" not in output


def test_the_embedded_run_honours_log_json(tmp_path: Path) -> None:
    """A log shipper reading `stories up` gets JSON lines, as from each service alone."""
    _, returncode, output = _up_until_ready_then_ctrl_c(tmp_path, LOG_JSON="true")
    assert returncode == 0, output
    banner = {"", "1001 Stories is running (Ctrl-C stops it):"}
    records = []
    for line in output.splitlines():
        if line.strip() in banner or line.startswith("  "):
            continue  # the banner printed for the person at the terminal
        records.append(json.loads(line))  # every log line is one JSON object
    assert records, output
    assert all("event" in r and "level" in r for r in records), records[:3]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_emulators_port_follows_the_base_port() -> None:
    """#16.7: --base-port moved the APIs but left the AWS emulator on 4599, so a
    second run beside the first failed on it."""
    from stories.cli import _parser, embedded_aws_port

    assert embedded_aws_port(_parser().parse_args(["up"])) == 4599
    assert embedded_aws_port(_parser().parse_args(["up", "--base-port", "9001"])) == 5599
    chosen = _parser().parse_args(["up", "--base-port", "9001", "--aws-port", "4700"])
    assert embedded_aws_port(chosen) == 4700


def test_every_command_the_parser_names_has_what_runs_it() -> None:
    """#39: `main` is a table from command to function; a command parsed but not in
    the table (or the reverse) would fail only when someone ran it."""
    from stories.cli import COMMANDS, _parser

    parser = _parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMANDS)
