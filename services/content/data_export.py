"""Content's part of a person's export (#41): what they wrote (their submissions,
with each one's history), what they reviewed, and the books that credit them.
From content's own database only (shared/bus/exports.py)."""

from __future__ import annotations

from sqlalchemy import String, cast, or_, select

from services.content.models import Book, Submission, SubmissionTransition
from shared.bus.consumer import EventContext
from shared.bus.exports import as_rows, write_part
from shared.contracts.events import UserExportRequested

# What a part leaves out: the analysis's shingles and pictures are hashes of the
# manuscript, not about the person (the manuscript itself is theirs and listed).
LEFT_OUT = ("analysis",)


async def write_content_part(context: EventContext, event: UserExportRequested) -> None:
    session, user_id = context.session, event.user_id
    written = list(
        await session.scalars(
            select(Submission)
            .where(Submission.author_id == user_id)
            .order_by(Submission.created_at, Submission.id)
        )
    )
    history = list(
        await session.scalars(
            select(SubmissionTransition)
            .where(
                or_(
                    SubmissionTransition.submission_id.in_([s.id for s in written]),
                    SubmissionTransition.actor_id == user_id,
                )
            )
            .order_by(SubmissionTransition.at, SubmissionTransition.id)
        )
    )
    credited = list(
        await session.scalars(
            select(Book)
            .where(cast(Book.credits, String).contains(str(user_id)))
            .order_by(Book.created_at, Book.id)
        )
    )
    await write_part(
        context.resources,
        "content",
        event.export_id,
        user_id,
        {
            "submissions": as_rows(written, leave_out=LEFT_OUT),
            "submission_history": as_rows(history),
            "credited_books": [
                {
                    "book_id": str(b.id),
                    "title": b.title,
                    "language": b.language,
                    "status": b.status,
                    "credits": b.credits,
                }
                for b in credited
            ],
        },
    )
