"""The four services, by name."""

from __future__ import annotations

from typing import Any

from services.access.main import SERVICE as ACCESS
from services.content.main import SERVICE as CONTENT
from services.delivery.main import SERVICE as DELIVERY
from services.metrics.main import SERVICE as METRICS
from shared.service.definition import ServiceDefinition

SERVICES: dict[str, ServiceDefinition[Any, Any]] = {
    s.name: s for s in (CONTENT, ACCESS, DELIVERY, METRICS)
}
