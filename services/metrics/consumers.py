"""Events the metrics service reacts to: `HANDLERS = {EventContract: handler}`.

Metrics listens to everything. Each event is kept in the event log (the inbox
has already made sure it is new) and moves the aggregates in the same
transaction, so the log and the figures never disagree; `stories metrics
rebuild` recomputes the figures from the log.
"""

from __future__ import annotations

from services.metrics.projection import log_and_apply
from shared.bus.consumer import Handlers
from shared.contracts.events import EVENT_CONTRACTS

HANDLERS: Handlers = dict.fromkeys(EVENT_CONTRACTS.values(), log_and_apply)
