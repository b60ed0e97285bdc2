"""Events the metrics service reacts to: `HANDLERS = {EventContract: handler}`.

Metrics listens to everything; each event is kept in the event log (the inbox
has already made sure it is new), from which aggregates are built.
"""

from __future__ import annotations

from services.metrics import repository
from shared.consumer import EventContext, Handlers
from shared.events import EVENT_CONTRACTS, EventData


async def log_event(context: EventContext, _data: EventData) -> None:
    repository.add_to_event_log(context.session, context.envelope)


HANDLERS: Handlers = dict.fromkeys(EVENT_CONTRACTS.values(), log_event)
