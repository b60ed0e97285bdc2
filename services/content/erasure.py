"""An erased account, as content forgets it (#41, access's `user.erased`).

- What the person wrote and never saw published goes: their submissions that no
  book was made from, with their history, fingerprints and manuscripts (every S3
  version of each file).
- What was published stays published (its readers keep it, and its licence needs
  an attribution), but their credit is given under a pseudonym, "Volunteer"
  followed by a short code derived from the account id, so nobody is named and
  the same person's books still read as one contributor's. The PDF itself is not
  rewritten: its pages are the book as it was published.
- A submission a book was made from keeps its row (the book points at it); its
  author id names nobody once access has erased the account.

Idempotent: a redelivered event finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import structlog
from sqlalchemy import String, cast, delete, or_, select

from services.content.models import (
    Book,
    FingerprintBand,
    ManuscriptFingerprint,
    Submission,
    SubmissionTransition,
)
from services.content.settings import ContentSettings
from shared.bus.consumer import EventContext
from shared.contracts.events import UserErased

log = structlog.get_logger(__name__)


def pseudonym(user_id: uuid.UUID) -> str:
    """The name an erased person's credits carry: stable, and naming nobody."""
    return "Volunteer " + hashlib.sha256(b"credit:" + user_id.bytes).hexdigest()[:6].upper()


def pseudonymised(credits: list[dict[str, Any]], user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        {"role": c["role"], "name": pseudonym(user_id), "account_id": None}
        if c.get("account_id") == str(user_id)
        else c
        for c in credits
    ]


async def forget_author(context: EventContext, event: UserErased) -> None:
    session, user_id = context.session, event.user_id
    named = cast(Submission.credits, String).contains(str(user_id))
    for row in await session.scalars(
        select(Submission).where(or_(Submission.author_id == user_id, named))
    ):
        row.credits = pseudonymised(row.credits, user_id)
    for book in await session.scalars(
        select(Book).where(cast(Book.credits, String).contains(str(user_id)))
    ):
        book.credits = pseudonymised(book.credits, user_id)

    unpublished = list(
        await session.scalars(
            select(Submission).where(
                Submission.author_id == user_id,
                Submission.id.not_in(select(Book.submission_id)),
            )
        )
    )
    keys = {k for s in unpublished for k in (s.upload_key, s.manuscript_key) if k}
    ids = [s.id for s in unpublished]
    if ids:
        for table, column in (
            (SubmissionTransition, SubmissionTransition.submission_id),
            (FingerprintBand, FingerprintBand.submission_id),
            (ManuscriptFingerprint, ManuscriptFingerprint.submission_id),
            (Submission, Submission.id),
        ):
            await session.execute(delete(table).where(column.in_(ids)))
    await _delete_files(context, keys)
    log.info("an erased author forgotten", user_id=str(user_id), submissions_deleted=len(ids))


async def _delete_files(context: EventContext, keys: set[str]) -> None:
    """Every version of each file: a versioned bucket keeps old ones otherwise."""
    settings = context.resources.settings
    assert isinstance(settings, ContentSettings)
    s3, bucket = context.resources.aws.s3, settings.resource_names.bucket("uploads")
    for key in sorted(keys):
        listed = await s3.list_object_versions(Bucket=bucket, Prefix=key)
        versions = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
            if v["Key"] == key
        ]
        if versions:
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
