"""#22: `stories demo` fills a running platform through the gateway's public API
with a believable library, and the dashboard shows a month of curves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from stories.demo import DAYS, DOMAIN, LEARNERS, PASSWORD, STAFF, learner_email
from tests.harness.embedded import ADMIN_EMAIL, ADMIN_PASSWORD, running_platform, starts_timeout
from tests.platform.test_embedded import CHROMIUM, CHROMIUM_ARGS, TILES_AND_CHARTS, _until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(starts_timeout(1) + 600)]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "demo-dashboard.png"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_platform(tmp_path_factory.mktemp("demo")) as base:
        yield f"http://127.0.0.1:{base - 1}"


def _demo(gateway: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stories.cli",
            "demo",
            "--url",
            gateway,
            "--admin-email",
            ADMIN_EMAIL,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "STORIES_ADMIN_PASSWORD": ADMIN_PASSWORD},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _token(http: httpx.Client, gateway: str, email: str, password: str) -> dict[str, str]:
    login = http.post(f"{gateway}/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, (email, login.text)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _catalog(http: httpx.Client, gateway: str) -> list[dict[str, Any]]:
    books: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = http.get(
            f"{gateway}/v1/books", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
        ).json()
        books += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return books


def _opens_per_day(http: httpx.Client, gateway: str, admin: dict[str, str]) -> list[int]:
    to = datetime.now(UTC)
    answer = http.get(
        f"{gateway}/v1/metrics/timeseries",
        params={
            "metric": "opens",
            "interval": "day",
            "from": (to - timedelta(days=DAYS)).isoformat(),
            "to": to.isoformat(),
        },
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    return [int(p["value"]) for p in answer.json()["points"]]


async def test_the_demo_fills_the_platform_once_and_the_dashboard_shows_a_month(
    gateway: str, tmp_path: Path
) -> None:
    first = _demo(gateway)
    with httpx.Client(timeout=30) as http:
        books = _catalog(http, gateway)
        assert len(books) >= 40
        languages = {b["language"] for b in books}
        assert len(languages) >= 4, languages
        assert {b["access"] for b in books} == {"free", "entitled"}
        # Every role signs in with the printed credentials.
        for role in STAFF:
            email = f"{role.lower().replace('_', '-')}@{DOMAIN}"
            assert email in first
            me = http.get(f"{gateway}/v1/users/me", headers=_token(http, gateway, email, PASSWORD))
            assert me.json()["role"] == role
        learner = _token(http, gateway, learner_email(LEARNERS[0]), PASSWORD)
        assert http.get(f"{gateway}/v1/users/me", headers=learner).json()["role"] == "LEARNER"
        assert PASSWORD in first
        # A month of reading: opens on most days, spread across the month.
        admin = _token(http, gateway, ADMIN_EMAIL, ADMIN_PASSWORD)
        opens = await _eventually_counted(http, gateway, admin)
        assert sum(1 for n in opens if n > 0) >= DAYS * 2 // 3, opens
        assert len(set(opens)) > 5, "a curve, not a flat line"
        teacher = _token(http, gateway, f"teacher@{DOMAIN}", PASSWORD)
        classes = http.get(f"{gateway}/v1/classes", headers=teacher).json()["items"]
        assert len(classes) == 1

        # Again: nothing new.
        second = _demo(gateway)
        assert "0 to publish" in second
        assert "0 events taken now" in second
        assert len(_catalog(http, gateway)) == len(books)
        assert len(http.get(f"{gateway}/v1/classes", headers=teacher).json()["items"]) == 1
        learners = http.get(
            f"{gateway}/v1/classes/{classes[0]['id']}/learners", headers=teacher
        ).json()
        assert len(learners) == len(LEARNERS)
        assert _opens_per_day(http, gateway, admin) == opens

    await _dashboard(gateway, opens, tmp_path)


async def _eventually_counted(http: httpx.Client, gateway: str, admin: dict[str, str]) -> list[int]:
    """The metrics consumer counts the events a moment after delivery took them."""
    import asyncio

    last: list[int] = []
    for _ in range(60):
        opens = _opens_per_day(http, gateway, admin)
        if opens == last and sum(opens) > 0:
            return opens
        last = opens
        await asyncio.sleep(2)
    raise AssertionError(f"the opens never settled: {last}")


async def _dashboard(gateway: str, opens: list[int], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"SKIPPED LOUDLY: no {CHROMIUM}; `make test` installs Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{gateway}/dashboard")  # through the one origin
            await page.fill("input[name=email]", ADMIN_EMAIL)
            await page.fill("input[name=password]", ADMIN_PASSWORD)
            await page.click("button[type=submit]")
            await _until(page, "() => window.dashboard.lastUpdated !== null")
            shown = await page.evaluate(TILES_AND_CHARTS)
            reading = shown["charts"]["chart-reading"]
            assert len(reading["labels"]) >= DAYS
            assert sum(1 for v in reading["values"] if v > 0) >= DAYS * 2 // 3, reading
            assert sum(reading["values"]) == sum(opens)
            assert shown["painted"]["chart-reading"] > 1000
            assert int(shown["tiles"]["published_books"]) >= 40
            assert errors == []
            shot = await page.screenshot(full_page=True, animations="disabled")
            (tmp_path / "demo-dashboard.png").write_bytes(shot)
            if os.environ.get("UPDATE_SCREENSHOTS"):
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                SCREENSHOT.write_bytes(shot)
        finally:
            await browser.close()
