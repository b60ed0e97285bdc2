"""A reader's next books (#42) and the languages they say they read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.access.components import ComponentsDep
from services.access.dependencies import AccountServiceDep
from services.access.next_books import NextBooks, Picked
from services.access.schemas import NextBook, ReadingLanguages, UserOut
from services.access.schemas import NextBooks as NextBooksOut
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal

next_books = APIRouter(prefix="/v1/users", tags=["users"])


async def get_next_books(accounts: AccountServiceDep, components: ComponentsDep) -> NextBooks:
    return NextBooks(accounts, components.next_books_model)


NextBooksDep = Annotated[NextBooks, Depends(get_next_books)]

REASONS = {
    "assigned": "assigned by your teacher",
    "because-you-read": "because you read {because}",
    "popular": "popular at your level in {language}",
    "popular-new": "popular in {language}",
}


@next_books.get(
    "/me/recommendations",
    summary="The caller's next books, with why (#42)",
    description="Books the caller can open now and has not read: their classes' "
    "assignments first, then, in the languages they read (their declared ones before "
    "they have read anything), at their level or one step up, one version of a story "
    "at most, each with its reason. A short or empty list says why in `note`.",
    responses=problem_responses(401, 403, 422),
)
async def my_recommendations(
    principal: CurrentPrincipal,
    service: NextBooksDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> NextBooksOut:
    return next_books_out(await service.for_reader(principal, limit))


def next_books_out(picked: Picked) -> NextBooksOut:
    items = []
    new_reader = picked.recommendations.note == "no-history"
    for pick in picked.recommendations.picks:
        book = picked.books[pick.book]
        because = picked.books.get(pick.because) if pick.because else None
        reason = "popular-new" if pick.reason == "popular" and new_reader else pick.reason
        book_id = uuid.UUID(pick.book)
        items.append(
            NextBook(
                book_id=book_id,
                title=book.title,
                language=book.language,
                reading_level=book.reading_level,
                family_id=book.family_id,
                reason=pick.reason,
                reason_text=REASONS[reason].format(
                    because=because.title if because else "", language=book.language
                ),
                because_book_id=because.book_id if because else None,
                assigned=book_id in picked.due,
                due_at=picked.due.get(book_id),
            )
        )
    return NextBooksOut(items=items, note=picked.recommendations.note)


@next_books.put(
    "/me/reading-languages",
    summary="Declare the languages you read (#42)",
    description="Your next books are in these languages until your reading says which "
    "you read; an empty list takes them back.",
    responses=problem_responses(401, 403, 422),
)
async def set_my_reading_languages(
    body: ReadingLanguages, principal: CurrentPrincipal, service: NextBooksDep
) -> UserOut:
    return UserOut.model_validate(await service.set_reading_languages(principal, body.languages))
