"""Events the content service reacts to: `HANDLERS = {EventContract: handler}`."""

from __future__ import annotations

from shared.consumer import Handlers

HANDLERS: Handlers = {}
