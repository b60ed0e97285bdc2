"""Events the content service reacts to: `HANDLERS = {EventContract: handler}`.

Content consumes its own book.published: each publication is processed by
content's worker (services/content/processing.py), off the request path; and
access's user.erased: an erased author's unpublished work goes, their credits
take a pseudonym (services/content/erasure.py); and user.export_requested: content
writes its part of a person's export (services/content/data_export.py).
"""

from __future__ import annotations

from services.content.data_export import write_content_part
from services.content.erasure import forget_author
from services.content.processing import process_publication
from shared.bus.consumer import Handlers
from shared.contracts.events import BookPublished, UserErased, UserExportRequested

HANDLERS: Handlers = {
    BookPublished: process_publication,
    UserErased: forget_author,
    UserExportRequested: write_content_part,
}
