"""The figures as CloudWatch custom metrics, so the infra's dashboards and alarms
(review backlog, low engagement) can use them.

The worker publishes the overview's figures as gauges every
`METRICS_CLOUDWATCH_EXPORT_SECONDS` with PutMetricData: values read from the
aggregates, so a restart or a second worker publishes the same numbers rather
than counting anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import structlog

from services.metrics.figures import MetricsReader
from services.metrics.settings import MetricsSettings
from services.metrics.sketches import ReaderSketches
from shared.contracts.clock import now_utc
from shared.resources import Resources
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)
MAX_PER_CALL = 1000  # PutMetricData takes up to 1,000 values a call


def metric_data(overview: dict[str, Any], environment: str) -> list[dict[str, Any]]:
    at: datetime = overview["as_of"]
    env = {"Name": "Environment", "Value": environment}

    def gauge(name: str, value: float, **dimensions: str) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": [env, *({"Name": k, "Value": v} for k, v in dimensions.items())],
            "Timestamp": at,
            "Value": float(value),
            "Unit": "Count",
        }

    data = [
        gauge("RegistrationsToday", overview["registrations"]["today"]),
        gauge("LoginsToday", overview["logins"]["today"]),
        gauge("PdfOpensToday", overview["pdf_opens"]["today"]),
        gauge("CompletionsToday", overview["completions"]["today"]),
        gauge("DistinctReaders24h", overview["distinct_readers"]["last_24h"]),
        gauge("DistinctReaders7d", overview["distinct_readers"]["last_7_days"]),
        gauge("ReviewBacklog", overview["review_backlog"]),
        gauge("PublishedBooks", overview["published_books"]),
    ]
    data += [gauge("Users", n, Role=role) for role, n in sorted(overview["users_by_role"].items())]
    data += [
        gauge("Submissions", n, Status=status)
        for status, n in sorted(overview["submissions_by_status"].items())
    ]
    return data


async def export_once(resources: Resources, settings: MetricsSettings) -> list[dict[str, Any]]:
    async with resources.session_factory() as session:
        reader = MetricsReader(
            session,
            ReaderSketches.of(resources),
            now_utc(),
            review_overdue_days=settings.review_overdue_days,
        )
        overview = await reader.overview()
    data = metric_data(overview, settings.environment.value)
    for start in range(0, len(data), MAX_PER_CALL):
        await resources.aws.cloudwatch.put_metric_data(
            Namespace=settings.cloudwatch_namespace, MetricData=data[start : start + MAX_PER_CALL]
        )
    return data


async def export_to_cloudwatch(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's export loop; a failed export is logged and tried again next period."""
    if not isinstance(settings, MetricsSettings) or settings.cloudwatch_export_seconds <= 0:
        return
    while not stop.is_set():
        try:
            await export_once(resources, settings)
        except Exception:
            log.warning("cloudwatch export failed", namespace=settings.cloudwatch_namespace)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.cloudwatch_export_seconds)
