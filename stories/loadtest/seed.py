"""The load test's data, made through the platform's public APIs only: staff of
every role, published books in several languages (some free, some entitled),
readers with their tokens, and teachers' grants of the entitled books.

Nothing is written to a database directly, so seeding also proves the flow a
newcomer follows: register, sign in, submit, review, publish, grant.
"""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from stories.samples import story_pdf

LANGUAGES = ("en", "sw", "fr", "es", "pt")
CATEGORIES = ("animals", "science", "family", "adventure")
READER_PASSWORD = "Reading-is-fun-42"  # noqa: S105 - synthetic readers of a throwaway run
STAFF_ROLES = ("VOLUNTEER", "STORY_MANAGER", "BOOK_MANAGER", "CONTENT_ADMIN", "TEACHER")
# A tiny but real PDF (what the submit check looks for).
# A real PDF: manuscripts are parsed, inspected and rendered at submit.
MANUSCRIPT = story_pdf("A load test story", pages=4)
# Every ENTITLED_EVERY-th book needs an entitlement; the rest are free.
ENTITLED_EVERY = 4
ENTITLED_PER_READER = 2
FREE_PER_READER = 4


class SeedingError(RuntimeError):
    pass


@dataclass
class Account:
    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Book:
    id: str
    language: str
    category: str
    access: str


@dataclass
class Library:
    """What the load is made of."""

    admin: Account
    staff: dict[str, Account]
    books: list[Book]
    readers: list[Account]
    # reader index -> the books they may read (free ones and their grants)
    shelves: list[list[str]] = field(default_factory=list)


class RetryAfterTransport(httpx.AsyncBaseTransport):
    """Does what a polite client does with a 503 and Retry-After: waits and asks again
    (for up to about two and a half minutes). The platform sheds load that way;
    seeding must not fail on it. Six tries (25 s) once were too few: submitting 100
    books at once queues them for content's deep manuscript check, which reads
    every page's text since #40."""

    def __init__(self, inner: httpx.AsyncBaseTransport, attempts: int = 30) -> None:
        self._inner = inner
        self._attempts = attempts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self._attempts - 1):
            response = await self._inner.handle_async_request(request)
            retry_after = response.headers.get("retry-after", "")
            if response.status_code != 503 or not retry_after.isdigit():
                return response
            await response.aclose()
            await asyncio.sleep(min(float(retry_after), 5.0))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    if response.status_code not in statuses:
        raise SeedingError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


class Seeder:
    def __init__(self, urls: dict[str, str], http: httpx.AsyncClient) -> None:
        self.urls = urls
        self.http = http

    async def sign_in(self, email: str, password: str) -> Account:
        tokens = expect(
            await self.http.post(
                f"{self.urls['access']}/v1/auth/login",
                json={"email": email, "password": password},
            ),
            200,
        )
        me = expect(
            await self.http.get(
                f"{self.urls['access']}/v1/users/me",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            ),
            200,
        )
        return Account(me["id"], email, tokens["access_token"], tokens["refresh_token"])

    async def register(self, email: str, password: str, name: str) -> str:
        body = expect(
            await self.http.post(
                f"{self.urls['access']}/v1/auth/register",
                json={
                    "email": email,
                    "password": password,
                    "display_name": name,
                    "birth_year": 1990,
                },
            ),
            201,
        )
        return str(body["id"])

    async def staff_member(self, admin: Account, role: str, tag: str) -> Account:
        email = f"{role.lower().replace('_', '-')}-{tag}@example.org"
        user_id = await self.register(email, READER_PASSWORD, role.title())
        expect(
            await self.http.put(
                f"{self.urls['access']}/v1/users/{user_id}/role",
                json={"role": role},
                headers=admin.headers,
            ),
            200,
        )
        return await self.sign_in(email, READER_PASSWORD)  # a token that carries the new role

    async def publish_book(self, staff: dict[str, Account], number: int) -> Book:
        content = self.urls["content"]
        language = LANGUAGES[number % len(LANGUAGES)]
        category = CATEGORIES[number % len(CATEGORIES)]
        access = "entitled" if number % ENTITLED_EVERY == 0 else "free"
        author, reviewer = staff["VOLUNTEER"], staff["STORY_MANAGER"]
        submission = expect(
            await self.http.post(
                f"{content}/v1/submissions",
                json={
                    "title": f"Story number {number}: the {category} of the moon",
                    "summary": f"A {category} story in {language}, told for the load test.",
                    "language": language,
                    "age_min": 4 + number % 4,
                    "age_max": 9 + number % 4,
                    "category": category,
                    "reading_level": "early",
                },
                headers=author.headers,
            ),
            201,
        )
        ticket = expect(
            await self.http.post(
                f"{content}/v1/submissions/{submission['id']}/upload",
                json={},
                headers=author.headers,
            ),
            200,
        )
        fields = {**ticket["fields"], "Content-Type": "application/pdf"}
        expect(
            await self.http.post(
                ticket["url"],
                data=fields,
                files={"file": ("story.pdf", MANUSCRIPT, "application/pdf")},
            ),
            200,
            201,
            204,
        )
        submitted = expect(
            await self.http.post(
                f"{content}/v1/submissions/{submission['id']}/submit",
                headers={**author.headers, "If-Match": f'"{submission["version"]}"'},
            ),
            200,
        )
        claimed = expect(
            await self.http.post(
                f"{content}/v1/submissions/{submission['id']}/claim",
                headers={**reviewer.headers, "If-Match": f'"{submitted["version"]}"'},
            ),
            200,
        )
        approved = expect(
            await self.http.post(
                f"{content}/v1/submissions/{submission['id']}/review",
                json={"decision": "approve", "notes": None},
                headers={**reviewer.headers, "If-Match": f'"{claimed["version"]}"'},
            ),
            200,
        )
        book = expect(
            await self.http.post(
                f"{content}/v1/books",
                json={"submission_id": approved["id"], "access": access},
                headers=staff["BOOK_MANAGER"].headers,
            ),
            201,
        )
        expect(
            await self.http.post(
                f"{content}/v1/books/{book['id']}/publish", headers=staff["CONTENT_ADMIN"].headers
            ),
            200,
        )
        return Book(str(book["id"]), language, category, access)

    async def reader(self, tag: str, number: int) -> Account:
        email = f"reader-{number}-{tag}@example.org"
        await self.register(email, READER_PASSWORD, f"Reader {number}")
        return await self.sign_in(email, READER_PASSWORD)

    async def grant(self, teacher: Account, book: Book, readers: list[Account]) -> None:
        """Access learns of a publication through events: retry until it has."""
        for _ in range(100):
            response = await self.http.post(
                f"{self.urls['access']}/v1/entitlements/bulk",
                json={
                    "user_ids": [r.id for r in readers],
                    "book_id": book.id,
                    "source": "teacher_assignment",
                },
                headers=teacher.headers,
            )
            if response.status_code == 201:
                return
            if response.status_code != 404:
                expect(response, 201)
            await asyncio.sleep(0.2)
        raise SeedingError(f"access never heard that book {book.id} was published")

    async def wait_until_delivery_knows(self, library: Library, within: float = 900) -> None:
        """Delivery decides from events: wait until every book and grant has reached it."""
        checks = [
            (library.readers[i], book_id)
            for i in random.Random(1).sample(range(len(library.readers)), 20)
            for book_id in library.shelves[i]
        ]
        deadline = asyncio.get_running_loop().time() + within
        while checks:
            reader, book_id = checks[-1]
            response = await self.http.post(
                f"{self.urls['delivery']}/v1/deliveries",
                json={"book_id": book_id},
                headers=reader.headers,
            )
            if response.status_code == 200:
                checks.pop()
                continue
            if asyncio.get_running_loop().time() > deadline:
                raise SeedingError(f"delivery never allowed {book_id}: {response.text[:200]}")
            await asyncio.sleep(0.2)


async def seed_library(
    urls: dict[str, str],
    *,
    admin_email: str,
    admin_password: str,
    readers: int,
    books: int,
    progress: Callable[[str], None] = print,
) -> Library:
    tag = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=32)
    transport = RetryAfterTransport(httpx.AsyncHTTPTransport(limits=limits))
    async with httpx.AsyncClient(timeout=30, transport=transport) as http:
        seeder = Seeder(urls, http)
        admin = await seeder.sign_in(admin_email, admin_password)
        staff = {role: await seeder.staff_member(admin, role, tag) for role in STAFF_ROLES}
        progress(f"seeding: staff of {len(staff)} roles; publishing {books} books ...")
        library_books: list[Book] = await bounded(
            8, [functools.partial(seeder.publish_book, staff, n) for n in range(books)]
        )
        progress(f"seeding: registering and signing in {readers} readers ...")
        accounts: list[Account] = await bounded(
            16, [functools.partial(seeder.reader, tag, n) for n in range(readers)]
        )
        library = Library(admin, staff, library_books, accounts)
        free = [b for b in library_books if b.access == "free"]
        entitled = [b for b in library_books if b.access == "entitled"]
        choose = random.Random(7)
        holders: dict[str, list[Account]] = {b.id: [] for b in entitled}
        for reader in accounts:
            shelf = [b.id for b in choose.sample(free, min(FREE_PER_READER, len(free)))]
            for book in choose.sample(entitled, min(ENTITLED_PER_READER, len(entitled))):
                shelf.append(book.id)
                holders[book.id].append(reader)
            library.shelves.append(shelf)
        progress(f"seeding: a teacher grants {len(entitled)} entitled books ...")
        await bounded(
            4,
            [
                functools.partial(seeder.grant, staff["TEACHER"], b, holders[b.id][i : i + 500])
                for b in entitled
                for i in range(0, len(holders[b.id]), 500)
            ],
        )
        progress("seeding: waiting until delivery has heard of every grant (events) ...")
        await seeder.wait_until_delivery_knows(library)
        return library
