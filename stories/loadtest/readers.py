"""Readers at work, counting what the platform acknowledged: the load of the fault
suite and of `stories bench redis-pause`.

Each reader asks for a link to one of the books, reports a page of it, and now and
then signs in again; every answer is kept with the window it fell in (the fault
going on at the time), so figures can be read per window. Only 2xx answers are
counted as done, which is what the platform's own figures must then equal.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from stories.loadtest.seed import READER_PASSWORD, Account

TOTAL_PAGES = 12
# Long enough to see the answer of a request that was slow, not lost.
CLIENT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Answer:
    window: str
    kind: str
    status: int  # 0: no answer (connection refused, reset, or the client's timeout)
    seconds: float
    retry_after: bool
    detail: str

    def acceptable(self, fast_503_seconds: float) -> bool:
        """2xx, 429, or a 503 that is quick and says when to come back."""
        if 200 <= self.status < 300 or self.status == 429:
            return True
        return self.status == 503 and self.retry_after and self.seconds <= fast_503_seconds


def percentile_ms(seconds: list[float], p: float) -> float:
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


@dataclass
class ReadersAtWork:
    """Readers in a thread of their own (the caller stays free to cause faults).

    `sign_ins_per_second` adds sign-ins at a steady pace, each its own request
    whatever the others are waiting on, so their latency is what a person
    signing in at that moment would see (no coordinated omission).
    """

    urls: dict[str, str]
    readers: list[Account]
    books: list[str]
    sign_in_every: int = 8
    sign_ins_per_second: float = 0.0
    think_seconds: tuple[float, float] = (0.02, 0.08)
    window: str = "warm-up"
    answers: list[Answer] = field(default_factory=list)
    links: Counter[str] = field(default_factory=Counter)
    readers_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    furthest: dict[tuple[str, str], int] = field(default_factory=dict)
    logins: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def completions(self) -> Counter[str]:
        done: Counter[str] = Counter()
        for (_, book), page in self.furthest.items():
            done[book] += page == TOTAL_PAGES
        return done

    def of(self, window: str, kind: str) -> list[Answer]:
        return [a for a in self.answers if a.window == window and a.kind == kind]

    @contextmanager
    def running(self) -> Iterator[None]:
        """At work for the block (again and again: what they did adds up)."""
        self._stop.clear()
        thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 10)

    @contextmanager
    def during(self, window: str, then: str = "between faults") -> Iterator[None]:
        self.window = window
        try:
            yield
        finally:
            self.window = then

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=len(self.readers) * 2 + 64)
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as http:
            work = [self._reader(http, r, random.Random(n)) for n, r in enumerate(self.readers)]
            if self.sign_ins_per_second:
                work.append(self._paced_sign_ins(http))
            await asyncio.gather(*work)

    async def _ask(
        self, http: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        window, started = self.window, time.monotonic()
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.answers.append(
                Answer(
                    window,
                    kind,
                    0,
                    time.monotonic() - started,
                    False,
                    f"{type(exc).__name__}: {exc}",
                )
            )
            return None
        self.answers.append(
            Answer(
                window,
                kind,
                response.status_code,
                time.monotonic() - started,
                "retry-after" in response.headers,
                response.text[:300],
            )
        )
        return response

    async def _sign_in(self, http: httpx.AsyncClient, reader: Account) -> str | None:
        signed_in = await self._ask(
            http,
            "sign-in",
            "POST",
            f"{self.urls['access']}/v1/auth/login",
            json={"email": reader.email, "password": READER_PASSWORD},
        )
        if signed_in is not None and signed_in.status_code == 200:
            self.logins += 1
            token: str = signed_in.json()["access_token"]
            return token
        return None

    async def _paced_sign_ins(self, http: httpx.AsyncClient) -> None:
        rng = random.Random(-1)
        pending: set[asyncio.Task[str | None]] = set()
        next_at = time.monotonic()
        while not self._stop.is_set():
            task = asyncio.create_task(self._sign_in(http, rng.choice(self.readers)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1 / self.sign_ins_per_second
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)

    async def _reader(self, http: httpx.AsyncClient, reader: Account, rng: random.Random) -> None:
        token = reader.access_token
        turn = 0
        while not self._stop.is_set():
            turn += 1
            auth = {"Authorization": f"Bearer {token}"}
            book = rng.choice(self.books)
            link = await self._ask(
                http,
                "link",
                "POST",
                f"{self.urls['delivery']}/v1/deliveries",
                json={"book_id": book},
                headers=auth,
            )
            if link is not None and link.status_code == 200:
                self.links[book] += 1
                self.readers_of[book].add(reader.id)
            # Pages move on only from what was acknowledged, so a refused report is
            # asked again and the last page is reached by an answered one.
            page = min(self.furthest.get((reader.id, book), 0) + 4, TOTAL_PAGES)
            progress = await self._ask(
                http,
                "progress",
                "PUT",
                f"{self.urls['delivery']}/v1/reading/{book}/progress",
                json={"page": page, "total_pages": TOTAL_PAGES},
                headers=auth,
            )
            if progress is not None and 200 <= progress.status_code < 300:
                key = (reader.id, book)
                self.furthest[key] = max(self.furthest.get(key, 0), page)
            if self.sign_in_every and turn % self.sign_in_every == 0:
                token = await self._sign_in(http, reader) or token
            await asyncio.sleep(rng.uniform(*self.think_seconds))


def register_readers(urls: dict[str, str], count: int, tag: str) -> list[Account]:
    """Readers of the run's own, signed in, so every figure they move starts from nothing."""
    accounts = []
    with httpx.Client(timeout=30) as http:
        for n in range(count):
            email = f"{tag}-{n}-{random.getrandbits(32):08x}@example.org"
            registered = http.post(
                f"{urls['access']}/v1/auth/register",
                json={
                    "email": email,
                    "password": READER_PASSWORD,
                    "display_name": f"Reader {n}",
                    "birth_year": 1990,
                },
            )
            if registered.status_code != 201:
                raise RuntimeError(f"registering a reader: {registered.text}")
            tokens = http.post(
                f"{urls['access']}/v1/auth/login",
                json={"email": email, "password": READER_PASSWORD},
            ).json()
            accounts.append(
                Account(
                    registered.json()["id"], email, tokens["access_token"], tokens["refresh_token"]
                )
            )
    return accounts
