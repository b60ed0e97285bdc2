"""Processing a publication, in content's worker, off the request path.

On each book.published: the published PDF (that object version) goes through
pdfprocess.py in a child process; the lite edition and the thumbnails go to the
published bucket under keys of their own; the book records its page count, its
formats with their sizes, its thumbnails and its pages' text (searched with the
title and summary); book.processed tells the other services.

Idempotent: the book records which object version it processed, so a redelivery
does nothing, and a book.published older than the book's current publication
(republished since) is skipped: the newer event processes the newer file. A
file that cannot be processed within the limits is not retried: the message
goes to the dead-letter queue at once, with the reason (`stories dlq list`,
`stories dlq redrive` once the limits or the code allow it).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import structlog

from services.content.catalog import CATALOG_CHANNEL
from services.content.models import Book
from services.content.object_keys import PDF_CONTENT_TYPE, filename_for, processed_key
from services.content.pdfprocess import process_book_file
from services.content.repository import ContentRepository
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptStorage
from shared.bus.consumer import EventContext, PoisonMessageError
from shared.bus.outbox import record_event
from shared.contracts.events import BookFormat, BookProcessed, BookPublished, BookPublishedV1

log = structlog.get_logger(__name__)


def _is_current(book: Book | None, event: BookPublished | BookPublishedV1) -> bool:
    return (
        book is not None
        and book.object_key == event.object_key
        and book.object_version == event.object_version
        and book.processed_version != event.object_version
    )


def lite_filename(book: Book) -> str:
    name = book.source_filename or filename_for(book.title)
    stem = name[:-4] if name.lower().endswith(".pdf") else name
    return f"{stem} (lite).pdf"


async def process_publication(
    context: EventContext, event: BookPublished | BookPublishedV1
) -> None:
    settings = context.resources.settings
    if not isinstance(settings, ContentSettings):
        raise TypeError("content's handlers run with content's settings")
    names = settings.resource_names
    storage = ManuscriptStorage(
        context.resources.aws.s3,
        uploads_bucket=names.bucket("uploads"),
        published_bucket=names.bucket("published"),
    )
    repository = ContentRepository(context.session)
    # Read without a lock: processing takes seconds, and a manager editing the
    # book meanwhile must not wait for it. The row is locked to record the result.
    book = await repository.book(event.book_id)
    if book is None or not _is_current(book, event):
        return
    edition, title = book.edition, book.title
    cache = f"max-age={settings.published_cache_seconds}, immutable"
    with tempfile.TemporaryDirectory(prefix="stories-processing-") as folder:
        source, out = Path(folder) / "book.pdf", Path(folder) / "out"
        out.mkdir()
        original_bytes = await storage.download_published(
            event.object_key, event.object_version, source
        )
        result = await process_book_file(str(source), str(out), settings.processing_limits())
        if not result.ok:
            raise PoisonMessageError(
                f"book {event.book_id} (edition {edition}, {title!r}) could not be "
                f"processed: {result.reason}"
            )
        lite = await storage.put_processed(
            out / result.lite,
            key=processed_key(book.id, edition, "lite.pdf"),
            content_type=PDF_CONTENT_TYPE,
            cache_control=f"private, {cache}",
            filename=lite_filename(book),
        )
        thumbnails = {}
        for width, name in result.thumbnails.items():
            stored = await storage.put_processed(
                out / name,
                key=processed_key(book.id, edition, f"thumbnail-{width}.webp"),
                content_type="image/webp",
                cache_control=f"public, {cache}",
            )
            thumbnails[width] = stored.key
    formats = [
        BookFormat(
            format="pdf",
            object_key=event.object_key,
            object_version=event.object_version,
            size_bytes=original_bytes,
        ),
        BookFormat(
            format="pdf-lite",
            object_key=lite.key,
            object_version=lite.version,
            size_bytes=result.lite_bytes,
        ),
    ]
    book = await repository.book(event.book_id, for_update=True)
    if book is None or not _is_current(book, event):
        return  # republished (or processed by another worker) while this one worked
    book.processed_version = event.object_version
    book.page_count = result.pages
    book.formats = [f.model_dump() for f in formats]
    book.thumbnail_keys = thumbnails
    book.body_text = "\n".join(result.text)
    record_event(
        context.session,
        BookProcessed(
            book_id=book.id,
            source_version=event.object_version,
            page_count=result.pages,
            formats=formats,
        ),
    )
    log.info(
        "book processed",
        book_id=str(book.id),
        pages=result.pages,
        original_bytes=original_bytes,
        lite_bytes=result.lite_bytes,
        pictures_recompressed=result.pictures_recompressed,
    )
    _tell_catalogs_after_commit(context, book.id)


def _tell_catalogs_after_commit(context: EventContext, book_id: uuid.UUID) -> None:
    # The catalog's pages and this book's own answer show the new figures: every
    # API instance drops what it cached (services/content/catalog.py).
    async def tell() -> None:
        await context.resources.bus.publish(CATALOG_CHANNEL, "*")

    context.after_commit(tell)
