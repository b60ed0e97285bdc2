"""Running a service: its API under uvicorn, its worker (outbox relay and SQS
consumer), its migrations, all from one `ServiceDefinition` per service.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from prometheus_client import start_http_server

from shared.app import Resources, open_resources
from shared.consumer import ConsumerConfig, Handlers, SqsConsumer
from shared.events import Producer
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from shared.topology import queue_url

log = structlog.get_logger(__name__)


WorkerJob = Callable[[Resources, ServiceSettings, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    settings_class: type[ServiceSettings]
    # Builds the app; given Resources, the app shares them instead of opening its own.
    create_app: Callable[[ServiceSettings, Resources | None], FastAPI]
    produces: Producer | None
    handlers: Handlers
    migrations: Path
    default_port: int
    # Jobs of the service's own that its worker runs beside the relay and consumer.
    worker_jobs: Sequence[WorkerJob] = ()


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner, so several can share a process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(
    app: FastAPI, host: str, port: int, trusted_proxies: Sequence[object] = ()
) -> uvicorn.Config:
    """How every API is served. X-Forwarded-For is honoured only from
    `trusted_proxies` (uvicorn's own default trusts it from loopback, which let
    any local caller pick the address its sign-in attempts were counted under)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # Measured here: under load uvloop showed 50-220 ms p99 stalls in two of five
        # runs with the real Redis and PostgreSQL clients open, the asyncio loop
        # 20-22 ms in five of five at similar throughput (see the bench's BENCH_LOOP).
        loop="asyncio",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=[str(p) for p in trusted_proxies],
    )


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    trusted_proxies: Sequence[object] = (),
) -> None:
    server = EmbeddedServer(uvicorn_config(app, host, port, trusted_proxies))
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving


async def run_worker(
    definition: ServiceDefinition,
    settings: ServiceSettings,
    stop: asyncio.Event,
    resources: Resources | None = None,
    metrics_address: tuple[str, int] | None = None,
) -> None:
    """Relay this service's outbox and consume its queue until `stop` is set.

    With `metrics_address`, the worker's own Prometheus figures (outbox and
    consumer gauges) are served there, since a worker has no API to carry them.
    """
    async with AsyncExitStack() as stack:
        r = resources or await open_resources(settings, stack)
        if metrics_address is not None:
            host, port = metrics_address
            server, _ = start_http_server(port, host, registry=r.telemetry.registry)
            stack.callback(server.shutdown)
        jobs = []
        if definition.produces is not None:
            relay = OutboxRelay(
                session_factory=r.session_factory,
                sns=r.aws.sns,
                topic_arn=await r.events_topic_arn(definition.produces),
                telemetry=r.telemetry,
                batch_size=settings.outbox_batch_size,
                poll_seconds=settings.outbox_poll_seconds,
            )
            r.relay_wakers.append(relay.wake)
            jobs.append(relay.run(stop))
        if definition.handlers:
            name = settings.resource_names.queue(definition.name)
            consumer = SqsConsumer(
                queue_name=name,
                queue_url=await queue_url(r.aws.sqs, name),
                sqs=r.aws.sqs,
                handlers=definition.handlers,
                session_factory=r.session_factory,
                telemetry=r.telemetry,
                resources=r,
                config=ConsumerConfig(
                    batch_size=settings.consumer_batch_size,
                    concurrency=settings.consumer_concurrency,
                    wait_seconds=settings.consumer_wait_seconds,
                    visibility_seconds=settings.consumer_visibility_seconds,
                    retry_base_seconds=settings.consumer_retry_base_seconds,
                ),
            )
            jobs.append(consumer.run(stop))
        jobs += [job(r, settings, stop) for job in definition.worker_jobs]
        log.info(
            "worker started",
            service=definition.name,
            relay=definition.produces is not None,
            consumer=bool(definition.handlers),
        )
        await asyncio.gather(*jobs)
        log.info("worker stopped", service=definition.name)
