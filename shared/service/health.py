"""Liveness, readiness (database, Redis, its mirrors, AWS) and Prometheus
figures: the routes every service answers the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from shared.contracts.events import Producer
from shared.contracts.names import SUBSCRIPTIONS
from shared.http.problems import (
    ProblemDetail,
    problem_response,
)
from shared.resources import Resources, ResourcesDep

log = structlog.get_logger(__name__)


ReadinessCheck = Callable[[Resources], Awaitable[None]]


async def check_database(resources: Resources) -> None:
    async with resources.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis(resources: Resources) -> None:
    await resources.redis.ping()


async def check_redis_mirrors(resources: Resources) -> None:
    """The in-process copies of Redis state: the subscription that keeps them
    current, and the deny-list's full copy (each heals on its own after Redis
    returns, with backoff)."""
    if not resources.bus.connected:
        raise RuntimeError("invalidations not subscribed")
    if not resources.denylist.synced:
        raise RuntimeError("deny-list not loaded")


# Without these the service still answers (degraded: README, Degraded modes), so
# they are reported but do not take the process out of the load balancer, where
# every other process shares the same Redis anyway.
SOFT_CHECKS = frozenset({"redis", "redis_mirrors"})


def aws_readiness_check(service: str, produces: Producer | None) -> ReadinessCheck:
    """Check the AWS resources this service itself depends on exist and answer."""

    async def check_aws(resources: Resources) -> None:
        names = resources.settings.resource_names
        if produces is not None:
            arn = await resources.events_topic_arn(produces)
            await resources.aws.sns.get_topic_attributes(TopicArn=arn)
        if service in SUBSCRIPTIONS:
            await resources.aws.sqs.get_queue_url(QueueName=names.queue(service))

    return check_aws


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Database and AWS are reachable (Redis reported; without it, degraded)",
        responses={503: {"model": ProblemDetail}},
    )
    async def readyz(request: Request, resources: ResourcesDep) -> Response:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(resources), timeout=3.0)
            except Exception as exc:  # reported, not raised: readiness is an answer
                log.warning("readiness check failed", check=name, error=repr(exc))
                return name, f"failing: {type(exc).__name__}"
            return name, "ok"

        results = dict(await asyncio.gather(*(run(n, c) for n, c in checks.items())))
        failing = sorted(name for name, result in results.items() if result != "ok")
        if all(name in SOFT_CHECKS for name in failing):
            body: dict[str, Any] = {"status": "ready", "checks": results}
            if failing:
                body.update(status="degraded", degraded=failing)
            return JSONResponse(body)
        return problem_response(
            request,
            status=503,
            code="not-ready",
            title="Not ready",
            detail="Some dependencies are not reachable.",
            checks=results,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(resources: ResourcesDep) -> Response:
        return Response(
            generate_latest(resources.telemetry.registry), media_type=CONTENT_TYPE_LATEST
        )

    return router
