"""#20 xAPI: reading events and workflow milestones become statements in a real
learning record store (openfun's ralph, started here with its filesystem
backend), each exactly once: across redelivery, across an LRS outage, and when
`stories xapi replay` backfills a new LRS."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.metrics.xapi import ADL, PROGRESS_EXTENSION, statement_id
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    DeliveryIssued,
    EventData,
    ReadingCompleted,
    ReadingOpened,
    ReadingProgressed,
    SubmissionReviewed,
    SubmissionSubmitted,
)
from stories.emulator import free_port
from tests.harness.access import AccessHarness
from tests.harness.metrics import MetricsHarness, running_metrics
from tests.support import eventually

RALPH = Path(__file__).resolve().parents[2] / ".tools" / "ralph" / "bin"
USER, PASSWORD = "stories", "an lrs secret for tests"
HOME = "https://stories.example"
XAPI = {"X-Experience-API-Version": "1.0.3"}


class Lrs:
    """ralph's LRS on one port, its statements in one directory; stopped and started
    again on the same data (an outage), or on a new directory (a new LRS)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.data = workdir / "data-1"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_AUTH_FILE": str(self.workdir / "auth.json"),
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.data),
        }

    def credentials(self) -> None:
        subprocess.run(
            [RALPH / "ralph", "auth", "-u", USER, "-p", PASSWORD, "-s", "all",
             "-A", USER, HOME, "-w"],
            env=self.env(), cwd=self.workdir, check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self, *, new_data: bool = False) -> None:
        if new_data:
            self.data = self.workdir / f"data-{uuid.uuid4().hex[:6]}"
        self.process = subprocess.Popen(
            [RALPH / "python", Path(__file__).with_name("ralph_lrs.py"), str(self.port)],
            env=self.env(), cwd=self.workdir, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/__heartbeat__", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("ralph did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    async def statements(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with httpx.AsyncClient(auth=(USER, PASSWORD), headers=XAPI, timeout=10) as http:
            url: str | None = f"{self.url}/xAPI/statements?limit=500"
            while url:
                page = (await http.get(url)).json()
                found += page["statements"]
                more = page.get("more")
                url = f"{self.url}{more}" if more else None
        return found


@pytest.fixture(scope="module")
def lrs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not (RALPH / "ralph").exists():
        pytest.skip(
            "SKIPPED LOUDLY: no ralph in .tools/ralph; `make test` runs scripts/ensure-ralph"
        )
    server = Lrs(tmp_path_factory.mktemp("lrs"))
    server.credentials()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def sending(access: AccessHarness, lrs: Lrs) -> AsyncIterator[MetricsHarness]:
    async with running_metrics(
        access,
        xapi_lrs_url=f"{lrs.url}/xAPI",
        xapi_lrs_username=USER,
        xapi_lrs_password=PASSWORD,
        xapi_send_seconds=0.2,
    ) as harness:
        yield harness


class Story:
    """A book read by two readers, a submission reviewed: one statement each."""

    def __init__(self) -> None:
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        self.book, self.reader, self.other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.submission, self.author, self.reviewer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.logged: list[Envelope] = []  # the events that make statements

    def at(self, minutes: int, data: EventData, *, states: bool = True) -> Envelope:
        envelope = Envelope.wrap(data, time=self.base + timedelta(minutes=minutes))
        if states:
            self.logged.append(envelope)
        return envelope

    def first(self) -> list[Envelope]:
        return [
            self.at(0, BookCreated(book_id=self.book, submission_id=uuid.uuid4(),
                                   title="Mwezi", language="sw", access="free"), states=False),
            self.at(1, DeliveryIssued(book_id=self.book, user_id=self.reader, method="s3")),
            self.at(2, ReadingProgressed(book_id=self.book, user_id=self.reader, page=3,
                                         total_pages=12)),
            self.at(3, ReadingCompleted(book_id=self.book, user_id=self.reader)),
            self.at(4, SubmissionSubmitted(submission_id=self.submission, author_id=self.author,
                                           language="sw", family_id=uuid.uuid4())),
            self.at(5, SubmissionReviewed(submission_id=self.submission, reviewer_id=self.reviewer,
                                          decision="approve", seconds_since_submitted=60)),
        ]  # fmt: skip

    def during_outage(self) -> list[Envelope]:
        return [
            self.at(10 + n, ReadingOpened(book_id=self.book, user_id=self.other)) for n in range(5)
        ]


async def test_statements_reach_the_lrs_exactly_once_across_an_outage_and_a_replay(
    sending: MetricsHarness, lrs: Lrs
) -> None:
    story = Story()
    first = story.first()
    await sending.send(first)

    async def count(expected: int) -> bool:
        return len(await lrs.statements()) == expected

    await eventually(lambda: count(5), timeout=60, what="five statements in the LRS")
    by_id = {s["id"]: s for s in await lrs.statements()}
    ids = [str(statement_id(e.id)) for e in story.logged]
    assert set(by_id) == set(ids)
    opened, progressed, completed, shared, responded = (by_id[i] for i in ids)
    reader = {"objectType": "Agent", "account": {"homePage": HOME, "name": str(story.reader)}}
    assert opened["actor"] == reader
    assert opened["verb"]["id"] == ADL + "launched"
    assert opened["object"]["id"] == f"{HOME}/books/{story.book}"
    assert opened["object"]["definition"]["name"] == {"sw": "Mwezi"}
    assert opened["context"]["language"] == "sw"
    assert datetime.fromisoformat(opened["timestamp"]) == story.base + timedelta(minutes=1)
    assert progressed["verb"]["id"] == ADL + "progressed"
    assert progressed["result"]["extensions"][PROGRESS_EXTENSION] == 25
    assert completed["result"] == {"completion": True}
    assert shared["actor"]["account"]["name"] == str(story.author)
    assert responded["result"] == {"response": "approve"}
    assert "@" not in str(by_id)  # no email anywhere, and no name: ids only

    # Redelivered: nothing new.
    await sending.send(first)
    await eventually(sending.drained, timeout=30, what="the copies worked through")
    await asyncio.sleep(1)
    assert len(await lrs.statements()) == 5

    # The LRS away for a while: nothing lost, nothing doubled once it is back.
    lrs.stop()
    await sending.send(story.during_outage())
    await eventually(sending.drained, timeout=30, what="the events taken while the LRS is down")
    await asyncio.sleep(2)  # a few failed rounds
    lrs.start()
    await eventually(lambda: count(10), timeout=90, what="the outage's statements delivered")
    assert sorted(s["id"] for s in await lrs.statements()) == sorted(
        str(statement_id(e.id)) for e in story.logged
    )

    # A new LRS at the same address: the replay backfills it, once.
    lrs.stop()
    lrs.start(new_data=True)
    assert await lrs.statements() == []
    since = (story.base - timedelta(minutes=1)).isoformat()
    done = await sending.command("xapi", "replay", "--since", since)
    assert done.returncode == 0, done.stderr
    assert "10 statement(s)" in done.stdout
    await eventually(lambda: count(10), timeout=60, what="the replay in the new LRS")
    assert sorted(s["id"] for s in await lrs.statements()) == sorted(ids + [
        str(statement_id(e.id)) for e in story.logged[5:]
    ])  # fmt: skip
