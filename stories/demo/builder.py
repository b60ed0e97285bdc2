"""The demo made through the gateway's public API, as a frontend would: accounts
signed into before anyone registers, books looked up before they are written, the
class by its name, so a second run adds nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from stories.demo.history import reading_history
from stories.demo.library import (
    CATEGORIES,
    CLASS_NAME,
    PASSWORD,
    DemoError,
    Story,
    cover_png,
)
from stories.loadtest.seed import expect
from stories.samples import text_pdf


@dataclass
class Account:
    id: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Demo:
    """What is there after a run (made now or found from an earlier run)."""

    accounts: list[Account] = field(default_factory=list)
    books: dict[str, str] = field(default_factory=dict)  # title -> book id
    class_code: str = ""
    events_accepted: int = 0
    events_duplicate: int = 0


class DemoBuilder:
    def __init__(self, url: str, http: httpx.AsyncClient, say: Callable[[str], None]) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self.say = say

    async def sign_in(self, email: str, password: str) -> tuple[str, dict[str, Any]] | None:
        answer = await self.http.post(
            f"{self.url}/v1/auth/login", json={"email": email, "password": password}
        )
        if answer.status_code == 401:
            return None
        token = expect(answer, 200)["access_token"]
        me = expect(
            await self.http.get(
                f"{self.url}/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            ),
            200,
        )
        return token, me

    async def account(self, admin: Account | None, email: str, name: str, role: str) -> Account:
        """Signed into if it exists (no registration spent), registered if not; then
        given `role` by the admin when it has another."""
        found = await self.sign_in(email, PASSWORD)
        if found is None:
            expect(
                await self.http.post(
                    f"{self.url}/v1/auth/register",
                    json={
                        "email": email,
                        "password": PASSWORD,
                        "display_name": name,
                        "birth_year": 2011,
                    },
                ),
                201,
            )
            found = await self.sign_in(email, PASSWORD)
            if found is None:
                raise DemoError(f"{email} was registered but cannot sign in")
        token, me = found
        if me["role"] != role:
            assert admin is not None
            expect(
                await self.http.put(
                    f"{self.url}/v1/users/{me['id']}/role",
                    json={"role": role},
                    headers=admin.headers,
                ),
                200,
            )
            signed = await self.sign_in(email, PASSWORD)  # a token with the new role
            assert signed is not None
            token, me = signed
        return Account(str(me["id"]), email, role, token)

    async def pages(self, path: str, headers: dict[str, str], **query: Any) -> list[Any]:
        items: list[Any] = []
        cursor = None
        while True:
            params = {**query, "limit": 100, **({"cursor": cursor} if cursor else {})}
            page = expect(
                await self.http.get(f"{self.url}{path}", params=params, headers=headers), 200
            )
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def upload(self, ticket: dict[str, Any], name: str, body: bytes, kind: str) -> None:
        """A presigned POST, straight to storage, as a browser sends it."""
        fields = {**ticket["fields"], "Content-Type": kind}
        expect(
            await self.http.post(ticket["url"], data=fields, files={"file": (name, body, kind)}),
            200,
            201,
            204,
        )

    async def publish(
        self,
        staff: dict[str, Account],
        story: Story,
        drafts: dict[tuple[str, str, str], dict[str, Any]],
        books: dict[str, str],
    ) -> str:
        """One story from wherever an earlier run left it to the catalog: an original
        written from scratch, a translation derived from its family's original (as a
        volunteer translator does: credited, the metadata carried over, the title
        and summary then written in the new language)."""
        author, reviewer = staff["VOLUNTEER"], staff["STORY_MANAGER"]
        manager, publisher = staff["BOOK_MANAGER"], staff["CONTENT_ADMIN"]
        submission = drafts.get((story.title, story.language, story.derivation))
        if submission is None and story.source is not None:
            # A derivation cut off before it was renamed still has the original's title.
            submission = drafts.get((story.source.title, story.language, story.derivation))
        if submission is None and story.source is not None:
            change = (
                {"kind": "adaptation", "reading_level": story.reading_level,
                 "credited_as": "Demo volunteer adapter"}
                if story.adaptation
                else {"kind": "translation", "language": story.language,
                      "credited_as": "Demo volunteer translator"}
            )  # fmt: skip
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/books/{books[story.source.title]}/derivations",
                    json=change,
                    headers=author.headers,
                ),
                201,
            )
        if submission is not None and submission["title"] != story.title:
            submission = expect(
                await self.http.patch(
                    f"{self.url}/v1/submissions/{submission['id']}",
                    json={"title": story.title, "summary": f"{story.line} ({story.title})"},
                    headers={**author.headers, "If-Match": f'"{submission["version"]}"'},
                ),
                200,
            )
        if submission is None:
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/submissions",
                    json={
                        "title": story.title,
                        "summary": f"{story.line} A picture book for young readers.",
                        "language": story.language,
                        "age_min": 4 + story.number % 3,
                        "age_max": 8 + story.number % 3,
                        "category": CATEGORIES[story.number % len(CATEGORIES)],
                        "reading_level": story.reading_level,
                    },
                    headers=author.headers,
                ),
                201,
            )
        sid = submission["id"]
        if submission["status"] == "DRAFT":
            ticket = expect(
                await self.http.post(
                    f"{self.url}/v1/submissions/{sid}/upload", json={}, headers=author.headers
                ),
                200,
            )
            # The story's own text and its family's own picture (#40 reads both).
            manuscript = text_pdf(story.page_texts, drawing=story.number)
            await self.upload(ticket, "story.pdf", manuscript, "application/pdf")
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/submissions/{sid}/submit",
                    headers={**author.headers, "If-Match": f'"{submission["version"]}"'},
                ),
                200,
            )
        if submission["status"] == "SUBMITTED" or (
            submission["status"] == "IN_REVIEW" and submission.get("reviewer_id") != reviewer.id
        ):
            # Only the reviewer who claimed a submission decides it; a run cut off
            # after another reviewer's claim takes it over.
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/submissions/{sid}/claim",
                    json={"take_over": True},
                    headers={**reviewer.headers, "If-Match": f'"{submission["version"]}"'},
                ),
                200,
            )
        if submission["status"] == "IN_REVIEW":
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/submissions/{sid}/review",
                    # The reviewer confirms the level its text reads at (#40).
                    json={
                        "decision": "approve",
                        "notes": "Lovely pictures.",
                        "reading_level": story.reading_level,
                    },
                    headers={**reviewer.headers, "If-Match": f'"{submission["version"]}"'},
                ),
                200,
            )
        created = await self.http.post(
            f"{self.url}/v1/books",
            json={"submission_id": sid, "access": story.access},
            headers=manager.headers,
        )
        if created.status_code == 409:  # made by a run cut off before publishing
            drafts_books = await self.pages("/v1/books", manager.headers, status="DRAFT")
            book = next(
                b
                for b in drafts_books
                if (b["title"], b["language"]) == (story.title, story.language)
            )
        else:
            book = expect(created, 201)
            ticket = expect(
                await self.http.post(
                    f"{self.url}/v1/books/{book['id']}/cover",
                    json={"content_type": "image/png"},
                    headers=manager.headers,
                ),
                200,
            )
            await self.upload(ticket, "cover.png", cover_png(story), "image/png")
        expect(
            await self.http.post(
                f"{self.url}/v1/books/{book['id']}/publish", headers=publisher.headers
            ),
            200,
        )
        return str(book["id"])

    async def school_class(self, teacher: Account, learners: list[Account]) -> dict[str, Any]:
        classes = await self.pages("/v1/classes", teacher.headers)
        found = next((c for c in classes if c["name"] == CLASS_NAME), None)
        if found is None:
            found = expect(
                await self.http.post(
                    f"{self.url}/v1/classes",
                    json={"name": CLASS_NAME, "grade": "3"},
                    headers=teacher.headers,
                ),
                201,
            )
        for learner in learners:
            joined = await self.http.post(
                f"{self.url}/v1/classes/join",
                json={"code": found["join_code"]},
                headers=learner.headers,
            )
            # 404: the code expired since the last run (answered as an unknown one): a new one.
            if joined.status_code == 404:
                found = expect(
                    await self.http.post(
                        f"{self.url}/v1/classes/{found['id']}/join-code", headers=teacher.headers
                    ),
                    200,
                )
                joined = await self.http.post(
                    f"{self.url}/v1/classes/join",
                    json={"code": found["join_code"]},
                    headers=learner.headers,
                )
            expect(joined, 200)
        return found

    async def assign(self, teacher: Account, class_id: str, book_ids: list[str]) -> None:
        for book_id in book_ids:
            answer = await self.http.post(
                f"{self.url}/v1/classes/{class_id}/assignments",
                json={"book_id": book_id},
                headers=teacher.headers,
            )
            if answer.status_code == 404:  # access has not heard of the book yet
                await asyncio.sleep(0.5)
                answer = await self._retry_assignment(teacher, class_id, book_id)
            if answer.status_code != 409:  # 409: assigned by an earlier run
                expect(answer, 201)

    async def _retry_assignment(
        self, teacher: Account, class_id: str, book_id: str
    ) -> httpx.Response:
        for _ in range(120):
            answer = await self.http.post(
                f"{self.url}/v1/classes/{class_id}/assignments",
                json={"book_id": book_id},
                headers=teacher.headers,
            )
            if answer.status_code != 404:
                return answer
            await asyncio.sleep(0.5)
        return answer

    async def read(
        self, learner: Account, index: int, shelf: list[str], now: datetime
    ) -> list[int]:
        """A month of one learner's reading, sent as their tablet would after reading
        offline; events delivery cannot take yet (a book it has not heard of, opens
        past the link budget) are sent again until it can. Returns [accepted, duplicates]."""
        events = reading_history(index, shelf, now)
        totals = [0, 0]
        pending = events
        for _ in range(60):
            retry = []
            for start in range(0, len(pending), 500):
                batch = pending[start : start + 500]
                answer = expect(
                    await self.http.post(
                        f"{self.url}/v1/reading/events",
                        json={"device_id": f"demo-tablet-{index:02d}", "events": batch},
                        headers=learner.headers,
                    ),
                    200,
                )
                totals[0] += answer["accepted"]
                totals[1] += answer["duplicates"]
                # Not yet: a book delivery has not heard of, or opens past the
                # reader's link budget for this minute.
                waiting = {"unknown-book", "decision-denied", "too-many-opens"}
                retry += [
                    event
                    for event, result in zip(batch, answer["results"], strict=True)
                    if result["status"] == "refused" and result["reason"] in waiting
                ]
            if not retry:
                return totals
            pending = retry
            await asyncio.sleep(1.0)
        raise DemoError(f"delivery never took {len(pending)} reading events of {learner.email}")
