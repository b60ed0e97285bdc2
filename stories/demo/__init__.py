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

import functools
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from stories.demo.builder import Account, Demo, DemoBuilder
from stories.demo.history import demo_assignments, learner_shelf
from stories.demo.library import (
    CLASS_NAME,
    DAYS,
    DOMAIN,
    LEARNERS,
    PASSWORD,
    STAFF,
    DemoError,
    learner_email,
    stories,
)
from stories.loadtest.seed import RetryAfterTransport, bounded


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
            (s["title"], s["language"], s["derivation"]): s
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

        teacher = staff["TEACHER"]
        school_class = await builder.school_class(teacher, learners)
        demo.class_code = school_class["join_code"]
        assigned_stories = demo_assignments(library)
        assigned = [demo.books[s.title] for s in assigned_stories]
        await builder.assign(teacher, school_class["id"], assigned)
        say(f"demo: {CLASS_NAME} (code {demo.class_code}) with {len(assigned)} books assigned")

        now = datetime.now(UTC)
        shelves = [
            [demo.books[s.title] for s in learner_shelf(i, library, assigned_stories)]
            for i in range(len(learners))
        ]
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
