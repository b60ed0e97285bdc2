"""`stories bench submit` (#40): submit's p99 and the content API's own p99 while
manuscript analyses run beside them.

The whole platform runs as it does in the load test (every API and worker a
process of its own, PostgreSQL, Redis, a moto server; a database of its own).
One volunteer submits one-page books through the public API one after another
(each prepared, uploaded and submitted; only the submit is timed), while the
API's own traffic (the catalog's page and the volunteer's submission, in turns)
arrives at a fixed rate whatever the answers' pace, so a slow answer cannot hide
the ones behind it. Both are measured in turns, in each of four conditions:

- nothing beside;
- beside 40-page illustrated deep checks back to back *without* the analysis
  (the check as it was before #40: the control);
- beside the same checks *with* the analysis: what #40 adds to the machine;
- beside another volunteer's 40-page illustrated submits through the same API:
  the analysis in the API's own check child, where a submit queues for its place.

The row with the analysis is judged against the control: a p99 at most 1.25x.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from stories.bench.analysis import PICTURE_PAGE, TEXT_PAGE
from stories.bench.catalog import CATALOG_PATH
from stories.bench.content import checks_beside
from stories.bench.harness import Figure
from stories.bench.services import BENCH_REDIS_URL
from stories.loadtest.platform import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Platform,
    production_like_platform,
)
from stories.loadtest.readers import percentile_ms
from stories.loadtest.seed import Account, RetryAfterTransport, Seeder, expect
from stories.samples import text_pdf

SUBMIT_DATABASE = os.environ.get(
    "BENCH_SUBMIT_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_bench_submit"
)
API_RATE = 40.0  # the API's own requests per second, whatever the answers' pace
TARGET_P99_RATIO = 1.25
CONDITIONS = {
    "nothing beside": None,
    "beside 40-page checks, no analysis (control)": "without",
    "beside 40-page checks + analysis": "with",
    "beside another volunteer's 40-page submits": "submits",
}
_WORDS = sorted(set((PICTURE_PAGE + " " + TEXT_PAGE).replace(",", "").replace(".", "").split()))


def bench_submit(
    *,
    duration: float = 10.0,
    rounds: int = 3,
    database_url: str = SUBMIT_DATABASE,
    redis_url: str = BENCH_REDIS_URL,
) -> list[Figure]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-submit-") as folder,
        production_like_platform(
            Path(folder) / "logs", database_url=database_url, redis_url=redis_url
        ) as platform,
    ):
        return asyncio.run(_measure(platform, duration=duration, rounds=rounds))


async def _measure(platform: Platform, *, duration: float, rounds: int) -> list[Figure]:
    submits: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    requests: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    transport = RetryAfterTransport(httpx.AsyncHTTPTransport())
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(transport=transport, timeout=60, limits=limits) as http:
        seeder = Seeder(platform.urls, http)
        admin = await seeder.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        author = await seeder.staff_member(admin, "VOLUNTEER", "bench-submit")
        neighbour = await seeder.staff_member(admin, "VOLUNTEER", "bench-neighbour")
        watched, _ = await _submission(http, platform.urls["content"], author, "watched")
        big_book = text_pdf([PICTURE_PAGE] * 40, illustrated=True)
        for _ in range(rounds):  # in turns, so the machine's noise hits every condition
            for name, beside in CONDITIONS.items():
                async with _beside(beside, http, platform, neighbour, big_book):
                    taken, answered = await _turn(
                        http, platform.urls["content"], author, watched, duration
                    )
                submits[name] += taken
                requests[name] += answered
    figures: list[Figure] = []
    for kind, measured, unit in (
        ("submit of a 1-page book", submits, "/min"),
        (f"the API's own requests, {API_RATE:.0f}/s", requests, "req/s"),
    ):
        quiet = f"{kind}, nothing beside"
        control = f"{kind}, beside 40-page checks, no analysis (control)"
        for name, taken in measured.items():
            row = f"{kind}, {name}"
            baseline = {"nothing beside": None, "beside 40-page checks + analysis": control}
            figures.append(_figure(
                row, taken, unit, duration * rounds,
                baseline=baseline.get(name, quiet),
                target=TARGET_P99_RATIO if name == "beside 40-page checks + analysis" else None,
            ))  # fmt: skip
    return figures


def _figure(
    row: str,
    taken: list[float],
    unit: str,
    seconds: float,
    *,
    baseline: str | None,
    target: float | None,
) -> Figure:
    per = 60 if unit == "/min" else 1
    return Figure(
        "submit", row, len(taken) * per / seconds, unit,
        percentile_ms(taken, 50), percentile_ms(taken, 99),
        baseline_of=baseline, target_p99_ratio=target,
    )  # fmt: skip


async def _turn(
    http: httpx.AsyncClient, content: str, author: Account, watched: str, duration: float
) -> tuple[list[float], list[float]]:
    """One condition's turn: the submits one after another and the API's own
    traffic beside them, for `duration` seconds; each one's time in seconds."""
    stop = time.monotonic() + duration
    submits: list[float] = []
    answered: list[float] = []

    async def submitting() -> None:
        while time.monotonic() < stop:
            submission, version = await _submission(http, content, author, "one page")
            started = time.perf_counter()
            response = await http.post(
                f"{content}/v1/submissions/{submission}/submit",
                headers={**author.headers, "If-Match": f'"{version}"'},
            )
            submits.append(time.perf_counter() - started)
            expect(response, 200)

    async def one(due: float, path: str, headers: dict[str, str]) -> None:
        expect(await http.get(f"{content}{path}", headers=headers), 200)
        answered.append(time.monotonic() - due)  # from when it was due: no omission

    async def requesting() -> None:
        pending: set[asyncio.Task[None]] = set()
        due, turn = time.monotonic(), 0
        while due < stop:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            path, headers = (
                (CATALOG_PATH, {}) if turn % 2 else (f"/v1/submissions/{watched}", author.headers)
            )
            task = asyncio.create_task(one(due, path, headers))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due, turn = due + 1 / API_RATE, turn + 1
        await asyncio.gather(*pending)

    await asyncio.gather(submitting(), requesting())
    return submits, answered


async def _submission(
    http: httpx.AsyncClient, content: str, author: Account, kind: str, pdf: bytes | None = None
) -> tuple[str, int]:
    """A draft with its manuscript uploaded, ready to submit: its id and version. Each one-page
    book has words of its own, so none is a near-duplicate of another."""
    body = expect(
        await http.post(
            f"{content}/v1/submissions",
            json={
                "title": f"A {kind} story", "summary": "Measured by stories bench submit.",
                "language": "en", "age_min": 5, "age_max": 8, "category": "animals",
                "reading_level": "early",
            },
            headers=author.headers,
        ),
        201,
    )  # fmt: skip
    if pdf is None:
        words = random.sample(_WORDS, min(40, len(_WORDS)))
        pdf = text_pdf([" ".join(words).capitalize() + "."])
    ticket = expect(
        await http.post(
            f"{content}/v1/submissions/{body['id']}/upload", json={}, headers=author.headers
        ),
        200,
    )
    expect(
        await http.post(
            ticket["url"],
            data={**ticket["fields"], "Content-Type": "application/pdf"},
            files={"file": ("story.pdf", pdf, "application/pdf")},
        ),
        200, 201, 204,
    )  # fmt: skip
    return str(body["id"]), int(body["version"])


@contextlib.asynccontextmanager
async def _beside(
    beside: str | None,
    http: httpx.AsyncClient,
    platform: Platform,
    neighbour: Account,
    big_book: bytes,
) -> AsyncIterator[None]:
    if beside is None:
        yield
    elif beside == "submits":
        async with _neighbour_submitting(http, platform.urls["content"], neighbour, big_book):
            yield
    else:
        # Unpinned: the platform's processes are not pinned either.
        with _checks(beside):
            yield


@contextlib.contextmanager
def _checks(mode: str) -> Iterator[None]:
    with checks_beside(mode, pin=False):
        time.sleep(0.5)  # a check under way
        yield


@contextlib.asynccontextmanager
async def _neighbour_submitting(
    http: httpx.AsyncClient, content: str, neighbour: Account, book: bytes
) -> AsyncIterator[None]:
    """Another volunteer submitting the 40-page book over and over (flagged as a
    copy of itself from the second time on, as a resubmitted copy would be)."""
    stopping = asyncio.Event()

    async def submitting() -> None:
        while not stopping.is_set():
            submission, version = await _submission(http, content, neighbour, "big", book)
            expect(
                await http.post(
                    f"{content}/v1/submissions/{submission}/submit",
                    headers={**neighbour.headers, "If-Match": f'"{version}"'},
                ),
                200,
            )

    task = asyncio.create_task(submitting())
    await asyncio.sleep(1.0)  # its first check under way
    try:
        yield
    finally:
        stopping.set()
        await task
