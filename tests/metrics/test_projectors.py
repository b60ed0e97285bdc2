"""#39: the projection is a table from event type to projector; every contract
metrics listens to (legacy versions during a rollout included) has one."""

from __future__ import annotations

from services.metrics.consumers import HANDLERS
from services.metrics.projectors import PROJECTORS
from shared.contracts.events import ACCEPTED_LEGACY_CONTRACTS, EVENT_CONTRACTS


def test_every_event_metrics_takes_has_a_projector() -> None:
    taken = {*EVENT_CONTRACTS.values(), *ACCEPTED_LEGACY_CONTRACTS.values()}
    assert set(PROJECTORS) == taken
    assert set(HANDLERS) <= set(PROJECTORS)
