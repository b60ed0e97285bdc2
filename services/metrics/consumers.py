"""Events the metrics service reacts to: `HANDLERS = {EventContract: handler}`.

Metrics listens to everything. Each event is kept in the event log (the inbox
has already made sure it is new) and moves the aggregates in the same
transaction, so the log and the figures never disagree; `stories metrics
rebuild` recomputes the figures from the log. A person's export request also has
metrics write its part of the export (data_export.py); a rebuild, which only
applies events, never writes one again.
"""

from __future__ import annotations

from services.metrics.data_export import write_metrics_part
from services.metrics.projection import log_and_apply
from shared.bus.consumer import EventContext, Handlers
from shared.contracts.events import EVENT_CONTRACTS, UserExportRequested


async def log_and_export(context: EventContext, data: UserExportRequested) -> None:
    await log_and_apply(context, data)
    await write_metrics_part(context, data)


HANDLERS: Handlers = {
    **dict.fromkeys(EVENT_CONTRACTS.values(), log_and_apply),
    UserExportRequested: log_and_export,
}
