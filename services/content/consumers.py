"""Events the content service reacts to: `HANDLERS = {EventContract: handler}`.

Content consumes its own book.published: each publication is processed by
content's worker (services/content/processing.py), off the request path; and
access's user.erased: an erased author's unpublished work goes, their credits
take a pseudonym (services/content/erasure.py).
"""

from __future__ import annotations

from services.content.erasure import forget_author
from services.content.processing import process_publication
from shared.bus.consumer import Handlers
from shared.contracts.events import BookPublished, UserErased

HANDLERS: Handlers = {BookPublished: process_publication, UserErased: forget_author}
