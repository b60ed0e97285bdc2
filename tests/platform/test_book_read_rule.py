"""Access's `/v1/decisions` and delivery's local check are one rule: they must agree.

Every role x every kind of book (unknown, unpublished,
free, entitled) x with and without an entitlement (live, expired, revoked):
access answers over HTTP from its own tables; delivery's `decide` answers from
the same facts as its read model holds them. The two must give the same answer
for the same reason, everywhere in the table.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from services.access.models import Entitlement
from services.delivery.links import (
    NOT_PUBLISHED,
    BookObject,
    ReaderFacts,
    decide,
    needs_reader,
)
from shared.contracts.roles import Role
from shared.http.auth import Principal
from tests.harness.access import AccessHarness

BOOK_KINDS = ("unknown", "unpublished", "free", "entitled")
GRANTS = ("none", "live", "expired", "revoked")


async def test_access_and_delivery_agree_over_the_whole_table(access: AccessHarness) -> None:
    service = await access.service_token("delivery")
    now = datetime.now(UTC)
    accounts = {role: await access.account(role) for role in Role}
    books: dict[str, uuid.UUID] = {
        "unknown": uuid.uuid4(),
        "unpublished": await access.put_book(published=False, access="entitled"),
        "free": await access.put_book(published=True, access="free"),
        "entitled": await access.put_book(published=True, access="entitled"),
    }
    delivery_books = {
        "unknown": NOT_PUBLISHED,
        "unpublished": NOT_PUBLISHED,
        "free": BookObject(True, "k", "v", "free"),
        "entitled": BookObject(True, "k", "v", "entitled"),
    }
    compared = 0
    for grant in GRANTS:
        # A fresh book per grant state, so each account holds exactly that grant to it.
        entitled_book = await access.put_book(published=True, access="entitled")
        books_now = {**books, "entitled": entitled_book}
        async with access.resources.session_factory() as session:
            for account in accounts.values():
                if grant == "none":
                    continue
                session.add(
                    Entitlement(
                        user_id=account.id,
                        book_id=entitled_book,
                        source="purchase",
                        granted_by=None,
                        granted_at=now,
                        expires_at=now - timedelta(hours=1) if grant == "expired" else None,
                        revoked_at=now if grant == "revoked" else None,
                    )
                )
            await session.commit()
        await access.resources.decisions.invalidate_all()
        for (role, account), kind in itertools.product(accounts.items(), BOOK_KINDS):
            book_id = books_now[kind]
            response = await access.http.post(
                "/v1/decisions",
                json={
                    "user_id": str(account.id),
                    "action": "book:read",
                    "resource_id": str(book_id),
                },
                headers=service,
            )
            assert response.status_code == 200, response.text
            by_access = response.json()
            book = delivery_books[kind]
            held: dict[uuid.UUID, datetime | None] = {}
            if grant == "live":
                held[book_id] = None
            elif grant == "expired":
                held[book_id] = now - timedelta(hours=1)
            # The token says LEARNER whatever the account is: delivery must decide
            # on the role its read model holds, as access does on its own table.
            principal = Principal(str(account.id), Role.LEARNER, "jti", now + timedelta(minutes=5))
            reader = ReaderFacts(role, held) if needs_reader(book) else None
            by_delivery = decide(principal, book_id, book, reader, now)
            assert (by_delivery.allow, by_delivery.reason) == (
                by_access["allow"],
                by_access["reason"],
            ), (role, kind, grant)
            compared += 1
    assert compared == len(Role) * len(BOOK_KINDS) * len(GRANTS)


def test_an_account_delivery_has_not_heard_of_yet_is_decided_on_its_token_role() -> None:
    now = datetime.now(UTC)
    book_id = uuid.uuid4()
    entitled = BookObject(True, "k", "v", "entitled")
    unheard = ReaderFacts(None, {})
    for role in Role:
        principal = Principal(str(uuid.uuid4()), role, "jti", now + timedelta(minutes=5))
        decision = decide(principal, book_id, entitled, unheard, now)
        assert decision.allow == role.at_least(Role.BOOK_MANAGER), role
    # A free book needs no facts about the reader at all.
    assert not needs_reader(BookObject(True, "k", "v", "free"))
