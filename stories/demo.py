"""`stories demo`: a believable library in a running platform, for the frontend's
developers (#22), made through the gateway's public API only, as a frontend would.

- staff of every role and a class of learners, with their credentials printed;
- 46 picture books in five languages (English, French, Spanish, Swahili,
  Portuguese): ten story families, each written in one language and translated
  by a volunteer into most of the others (derived from the original, as the
  workflow has it), each book a real PDF of illustrated pages with a cover drawn
  in code, reviewed, approved and published by that staff; the families whose
  number ends in 4 or 9 are entitled;
- a teacher's class that joined with its code and has three books assigned;
- 30 days of reading: the learners' opens, page turns and completions spread over
  days and hours, sent as a device would after reading offline (`POST
  /v1/reading/events`, each event with its own time), so metrics and the dashboard
  show real curves.

Running it again adds nothing: accounts are signed into before anyone registers,
books are looked up by title in the catalog and in the volunteer's own
submissions (a run cut off half-way is finished, not repeated), the class by its
name, and reading events carry ids derived from what they are, which delivery
takes only once.
"""

from __future__ import annotations

import asyncio
import functools
import io
import random
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from stories.loadtest.seed import RetryAfterTransport, bounded, expect
from stories.samples import story_pdf

DOMAIN = "demo.example.org"
PASSWORD = "Read-together-2026"  # noqa: S105 - the demo's own accounts, printed for the developer
STAFF = ("VOLUNTEER", "STORY_MANAGER", "BOOK_MANAGER", "CONTENT_ADMIN", "TEACHER")
LEARNERS = (
    "Amina", "Baraka", "Chloé", "Daniel", "Esther", "Farid", "Grace", "Hugo",
    "Imani", "Joaquín", "Kofi", "Lucía", "Maya", "Nuru", "Omar", "Pedro",
    "Rosa", "Sami", "Tendai", "Zawadi",
)  # fmt: skip
CLASS_NAME = "Demo class 3B"
DAYS = 30
ENTITLED_EVERY = 5
# Every id the demo makes for a reading event comes from this namespace and what
# the event is: the same event sent again is the same id, which delivery takes once.
EVENT_IDS = uuid.UUID("6f1d0c2e-3b5a-4c1e-9d7f-2a8b4e6c1d30")

LANGUAGES = ("en", "fr", "es", "sw", "pt")
# Ten story families: each written in its first language, then translated by
# volunteers into most of the others (a few left missing, which the dashboard's
# coverage matrix shows as what to commission next). Titles in each language, in
# the order of LANGUAGES. Latin-1 text only: the PDFs use a standard font.
FAMILIES: list[tuple[str, tuple[str, str, str, str, str]]] = [
    ("en", ("The brave elephant", "L'éléphant courageux", "El elefante valiente",
            "Tembo jasiri", "O elefante corajoso")),
    ("sw", ("The sleepy hippo", "L'hippopotame endormi", "El hipopótamo dormilón",
            "Kiboko mwenye usingizi", "O hipopótamo sonolento")),
    ("fr", ("The curious giraffe", "La girafe curieuse", "La jirafa curiosa",
            "Twiga mdadisi", "A girafa curiosa")),
    ("en", ("The little tortoise", "La petite tortue", "La pequeña tortuga",
            "Kobe mdogo", "A pequena tartaruga")),
    ("sw", ("The singing lion", "Le lion qui chante", "El león cantarín",
            "Simba mwimbaji", "O leão cantor")),
    ("es", ("The hungry zebra", "Le zèbre gourmand", "La cebra glotona",
            "Pundamilia mlafi", "A zebra gulosa")),
    ("pt", ("The kind parrot", "Le perroquet gentil", "El loro amable",
            "Kasuku mwema", "O papagaio gentil")),
    ("en", ("The clever monkey", "Le singe malin", "El mono listo",
            "Tumbili mjanja", "O macaco esperto")),
    ("sw", ("The busy goat", "La chèvre pressée", "La cabra apurada",
            "Mbuzi mwepesi", "A cabra apressada")),
    ("fr", ("The dancing crocodile", "Le crocodile qui danse", "El cocodrilo bailarín",
            "Mamba mcheza ngoma", "O crocodilo dançarino")),
]  # fmt: skip
# The line that recurs on every page, in each language.
LINES = {
    "en": "Once upon a time, under the big baobab tree...",
    "fr": "Il était une fois, sous le grand baobab...",
    "es": "Había una vez, bajo el gran baobab...",
    "sw": "Hapo zamani za kale, chini ya mbuyu mkubwa...",
    "pt": "Era uma vez, debaixo do grande embondeiro...",
}
TITLE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CATEGORIES = ("animals", "adventure", "family", "science", "friendship")
LEVELS = ("emergent", "early", "transitional", "fluent")


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class Story:
    number: int  # of its family
    language: str
    title: str
    # The family's first book (the original), None for the original itself.
    source: Story | None = None

    @property
    def line(self) -> str:
        return LINES[self.language]

    @property
    def access(self) -> str:
        return "entitled" if self.number % ENTITLED_EVERY == ENTITLED_EVERY - 1 else "free"

    @property
    def pages(self) -> int:
        return 6 + self.number % 5


def stories() -> list[Story]:
    """Every book of the library, each family's original before its translations."""
    originals, translations = [], []
    for number, (first, titles) in enumerate(FAMILIES):
        original = Story(number, first, titles[LANGUAGES.index(first)])
        originals.append(original)
        for index, language in enumerate(LANGUAGES):
            # A few translations nobody has made yet.
            if language != first and (number + index) % 7 != 3:
                translations.append(Story(number, language, titles[index], original))
    return originals + translations


def learner_email(name: str) -> str:
    """chloe@..., not chloé@...: an address any mail system and form takes."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{plain.lower()}@{DOMAIN}"


def cover_png(story: Story) -> bytes:
    """A picture-book cover drawn in code: a sky of the book's own colour, a sun,
    two hills and a tree, the title on a band (PNG, 600 x 840)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(story.number)
    sky = (rng.randrange(80, 200), rng.randrange(140, 230), rng.randrange(180, 255))
    image = Image.new("RGB", (600, 840), sky)
    draw = ImageDraw.Draw(image)
    sun = rng.randrange(80, 520)
    draw.ellipse((sun - 60, 90, sun + 60, 210), fill=(255, 205, 60))
    hills = [(rng.randrange(40, 120), rng.randrange(120, 200), 60) for _ in range(2)]
    draw.ellipse((-200, 560, 420, 1100), fill=hills[0])
    draw.ellipse((200, 600, 820, 1100), fill=hills[1])
    trunk = rng.randrange(120, 480)
    draw.rectangle((trunk - 14, 470, trunk + 14, 640), fill=(110, 70, 40))
    draw.ellipse((trunk - 90, 360, trunk + 90, 520), fill=(40, 130, 60))
    draw.rectangle((0, 250, 600, 350), fill=(255, 250, 240))
    title = story.title
    for size in range(44, 20, -2):  # as large as fits the band
        try:  # Debian's DejaVu has every accent; Pillow's own font has none
            font: Any = ImageFont.truetype(TITLE_FONT, size=size)
        except OSError:
            font = ImageFont.load_default(size=size)
            title = unicodedata.normalize("NFKD", story.title).encode("ascii", "ignore").decode()
        if draw.textlength(title, font=font) <= 560:
            break
    draw.text((300, 300), title, fill=(40, 40, 60), font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


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
    published_now: int = 0
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
                    json={"email": email, "password": PASSWORD, "display_name": name},
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
        drafts: dict[tuple[str, str], dict[str, Any]],
        books: dict[str, str],
    ) -> str:
        """One story from wherever an earlier run left it to the catalog: an original
        written from scratch, a translation derived from its family's original (as a
        volunteer translator does: credited, the metadata carried over, the title
        and summary then written in the new language)."""
        author, reviewer = staff["VOLUNTEER"], staff["STORY_MANAGER"]
        manager, publisher = staff["BOOK_MANAGER"], staff["CONTENT_ADMIN"]
        submission = drafts.get((story.title, story.language))
        if submission is None and story.source is not None:
            # A derivation cut off before it was renamed still has the original's title.
            submission = drafts.get((story.source.title, story.language))
        if submission is None and story.source is not None:
            submission = expect(
                await self.http.post(
                    f"{self.url}/v1/books/{books[story.source.title]}/derivations",
                    json={
                        "kind": "translation",
                        "language": story.language,
                        "credited_as": "Demo volunteer translator",
                    },
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
                        "reading_level": LEVELS[story.number % len(LEVELS)],
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
            manuscript = story_pdf(
                story.title, pages=story.pages, illustrated=True, words=story.line
            )
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
                    json={"decision": "approve", "notes": "Lovely pictures."},
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


def reading_history(index: int, shelf: list[str], now: datetime) -> list[dict[str, Any]]:
    """One learner's month: on most school days a book or two, read at a time of
    day of their own, page by page, now and then to the end. The same learner and
    day always give the same events, with the same ids."""
    rng = random.Random(index)
    events: list[dict[str, Any]] = []
    habit = rng.choice((8, 10, 13, 16, 19))  # the hour they usually read
    for days_ago in range(DAYS - 1, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(minute=0, second=0, microsecond=0)
        weekend = day.weekday() >= 5
        # Busier towards today, as a library newly opened to a class is.
        if rng.random() > (0.35 if weekend else 0.55 + 0.3 * (DAYS - days_ago) / DAYS):
            continue
        for session in range(rng.choice((1, 1, 2))):
            book = rng.choice(shelf)
            at = day.replace(hour=(habit + 3 * session + rng.randrange(-1, 2)) % 24)
            if at >= now - timedelta(minutes=5):
                continue  # a device's clock is never ahead of the platform's
            read_to = rng.randrange(2, PAGES_READ + 1)
            key = f"{index}:{book}:{days_ago}:{session}"
            events.append(_event(key, book, at, "open"))
            events += [
                _event(key, book, at + timedelta(minutes=page), "progress", page)
                for page in range(1, read_to + 1)
            ]
            if read_to == PAGES_READ and rng.random() < 0.7:
                done = at + timedelta(minutes=PAGES_READ + 1)
                events.append(_event(key, book, done, "complete", PAGES_READ))
    return events


PAGES_READ = 8  # the pages of a book as its reader's device counts them


def _event(key: str, book: str, at: datetime, kind: str, page: int | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {
        "id": str(uuid.uuid5(EVENT_IDS, f"{key}:{kind}:{page}")),
        "type": kind,
        "book_id": book,
        "at": at.isoformat(),
    }
    if kind != "open":
        made |= {"page": page, "total_pages": PAGES_READ}
    return made


async def build_demo(
    url: str, admin_email: str, admin_password: str, say: Callable[[str], None] = print
) -> Demo:
    demo = Demo()
    limits = httpx.Limits(max_connections=16)
    transport = RetryAfterTransport(httpx.AsyncHTTPTransport(limits=limits))
    async with httpx.AsyncClient(timeout=60, transport=transport) as http:
        builder = DemoBuilder(url, http, say)
        signed = await builder.sign_in(admin_email, admin_password)
        if signed is None:
            raise DemoError(f"cannot sign in as {admin_email}: check the admin's credentials")
        admin = Account(str(signed[1]["id"]), admin_email, "ADMIN", signed[0])
        staff = {
            role: await builder.account(
                admin, f"{role.lower().replace('_', '-')}@{DOMAIN}", role.title(), role
            )
            for role in STAFF
        }
        learners: list[Account] = await bounded(
            4,
            [
                functools.partial(builder.account, admin, learner_email(name), name, "LEARNER")
                for name in LEARNERS
            ],
        )
        demo.accounts = [admin, *staff.values(), *learners]
        say(f"demo: {len(staff)} staff and {len(learners)} learners ready")

        library = stories()
        titles = {s.title for s in library}
        published = {
            b["title"]: str(b["id"])
            for b in await builder.pages("/v1/books", admin.headers, status="PUBLISHED")
            if b["title"] in titles  # the platform may hold books of its own
        }
        mine = await builder.pages("/v1/submissions", staff["VOLUNTEER"].headers, mine="true")
        drafts = {
            (s["title"], s["language"]): s
            for s in mine
            if s["status"] not in ("REJECTED", "CHANGES_REQUESTED")
        }
        missing = [s for s in library if s.title not in published]
        say(f"demo: {len(published)} books already published, {len(missing)} to publish ...")
        demo.books = dict(published)
        # The originals first: each translation is derived from its family's original.
        for wave in ([s for s in missing if s.source is None], [s for s in missing if s.source]):
            made = await bounded(
                4,
                [functools.partial(builder.publish, staff, s, drafts, demo.books) for s in wave],
            )
            demo.books |= {s.title: b for s, b in zip(wave, made, strict=True)}
        demo.published_now = len(missing)

        teacher = staff["TEACHER"]
        school_class = await builder.school_class(teacher, learners)
        demo.class_code = school_class["join_code"]
        entitled = [demo.books[s.title] for s in library if s.access == "entitled"]
        free = [demo.books[s.title] for s in library if s.access == "free"]
        assigned = [*entitled[:2], free[0]]
        await builder.assign(teacher, school_class["id"], assigned)
        say(f"demo: {CLASS_NAME} (code {demo.class_code}) with {len(assigned)} books assigned")

        now = datetime.now(UTC)
        shelves = [[*assigned, *random.Random(i).sample(free, 6)] for i in range(len(learners))]
        sent = await bounded(
            4,
            [
                functools.partial(builder.read, learner, i, shelves[i], now)
                for i, learner in enumerate(learners)
            ],
        )
        demo.events_accepted = sum(s[0] for s in sent)
        demo.events_duplicate = sum(s[1] for s in sent)
        say(
            f"demo: {DAYS} days of reading: {demo.events_accepted} events taken now, "
            f"{demo.events_duplicate} already there"
        )
    return demo


def credentials(demo: Demo, url: str) -> str:
    lines = ["", f"The demo library is ready at {url} ({len(demo.books)} books):", ""]
    lines.append(f"  {'role':<14} {'email':<34} password")
    # The admin, the staff and the first learner; the other learners alike.
    for account in demo.accounts[: len(STAFF) + 2]:
        password = "(yours)" if account.role == "ADMIN" else PASSWORD
        lines.append(f"  {account.role:<14} {account.email:<34} {password}")
    names = ", ".join(learner_email(n).split("@")[0] for n in LEARNERS[1:4])
    lines += [
        f"  (and the other learners: {names}, ... @{DOMAIN}, same password)",
        "",
        f"  class {CLASS_NAME}: join code {demo.class_code}",
        f"  dashboard {url}/dashboard  (sign in as an admin or the teacher)",
        f"  catalog   {url}/v1/books   OPDS {url}/opds   API docs {url}/docs",
        "",
    ]
    return "\n".join(lines)
