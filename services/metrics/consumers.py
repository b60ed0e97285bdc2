"""Events the metrics service reacts to: `HANDLERS = {EventContract: handler}`.

Metrics listens to everything. Each event is kept in the event log (the inbox
has already made sure it is new) and moves the aggregates in the same
transaction, so the log and the figures never disagree; `stories metrics
rebuild` recomputes the figures from the log.
"""

from __future__ import annotations

from services.metrics import repository
from services.metrics.service import apply_event
from shared.consumer import EventContext, Handlers
from shared.events import EVENT_CONTRACTS, EventData


async def log_and_apply(context: EventContext, data: EventData) -> None:
    repository.add_to_event_log(context.session, context.envelope)
    await apply_event(context, data)


HANDLERS: Handlers = dict.fromkeys(EVENT_CONTRACTS.values(), log_and_apply)
