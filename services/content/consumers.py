"""Events the content service reacts to: `HANDLERS = {EventContract: handler}`.

Content consumes only its own book.published: each publication is processed by
content's worker (services/content/processing.py), off the request path.
"""

from __future__ import annotations

from services.content.processing import process_publication
from shared.bus.consumer import Handlers
from shared.contracts.events import BookPublished

HANDLERS: Handlers = {BookPublished: process_publication}
