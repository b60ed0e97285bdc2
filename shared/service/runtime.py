"""Running a service: its API under uvicorn, its worker (outbox relay and SQS
consumer), all from its `ServiceDefinition` (definition.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
import uvicorn
from prometheus_client import start_http_server
from starlette.types import ASGIApp

from shared.bus.consumer import ConsumerConfig, Handlers, SqsConsumer
from shared.bus.outbox import OutboxRelay
from shared.clients.aws import queue_url
from shared.contracts.events import Producer
from shared.http.httpserver import CoalescingHttpToolsProtocol
from shared.resources import Resources, open_resources
from shared.service.definition import ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner, so several can share a process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


KEEP_ALIVE_SECONDS = 75


def uvicorn_config(
    app: ASGIApp, host: str, port: int, trusted_proxies: Sequence[object] = ()
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
        # One write per answer instead of two (shared/http/httpserver.py).
        http=CoalescingHttpToolsProtocol,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=[str(p) for p in trusted_proxies],
        # Longer than any client keeps an idle connection: the load balancer's 60 s
        # (infra: idle_timeout), httpx's 5 s. With uvicorn's own 5 s, a client that
        # reused a connection just as the server closed it got a reset: a 502 from
        # the load balancer, a ReadError in our tests (seen, about one in 8,000).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT): the
    kernel spreads new connections across every process listening on the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def serve_api(
    app: ASGIApp,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    trusted_proxies: Sequence[object] = (),
    reuse_port: bool = False,
) -> None:
    server = EmbeddedServer(uvicorn_config(app, host, port, trusted_proxies))
    sockets = [shared_port_socket(host, port)] if reuse_port else None
    serving = asyncio.create_task(server.serve(sockets=sockets))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving


def serve_in_processes(service: str, host: str, port: int, processes: int) -> int:
    """Run `processes` API processes of one service on one port (SO_REUSEPORT), so
    a task with several vCPUs uses them all (one Python process uses one core).

    Each is a plain `stories serve` process with its own caches, warmed at
    start-up, as separate instances are. SIGTERM or SIGINT reaches them all;
    if one exits on its own, the others are stopped and the exit code is passed
    on, so the orchestrator replaces the whole task rather than running it short.
    """
    command = [sys.executable, "-m", "stories.cli", "serve", service, "--host", host]
    children: list[subprocess.Popen[bytes]] = []
    asked_to_stop: set[int] = set()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    def stop_asked(signum: int, frame: object) -> None:
        asked_to_stop.add(signum)
        forward(signum, frame)

    def exit_code(child: subprocess.Popen[bytes]) -> int:
        # A child still importing when the stop came has no handler yet and dies of
        # the signal itself (-15): that is the stop we asked for, not a failure.
        code = child.returncode or 0
        return 0 if -code in asked_to_stop else code

    signal.signal(signal.SIGTERM, stop_asked)
    signal.signal(signal.SIGINT, stop_asked)
    for _ in range(processes):  # after the handlers, so no stop can miss a child
        if asked_to_stop:
            break
        children.append(
            subprocess.Popen([*command, "--port", str(port), "--reuse-port"])  # noqa: S603 - our CLI
        )
    code = 0
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() is not None and exit_code(child) != 0 and code == 0:
                code = exit_code(child)
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return code or max((exit_code(c) for c in children), default=0)


async def outbox_relay(resources: Resources, producer: Producer) -> OutboxRelay:
    """The relay of a producer's outbox, sized by its settings; woken by each commit."""
    settings = resources.settings
    relay = OutboxRelay(
        session_factory=resources.session_factory,
        sns=resources.aws.sns,
        topic_arn=await resources.events_topic_arn(producer),
        telemetry=resources.telemetry,
        batch_size=settings.outbox_batch_size,
        poll_seconds=settings.outbox_poll_seconds,
    )
    resources.relay_wakers.append(relay.wake)
    return relay


async def event_consumer(resources: Resources, consumer: str, handlers: Handlers) -> SqsConsumer:
    """The consumer of a service's queue, sized by its settings."""
    settings = resources.settings
    name = settings.resource_names.queue(consumer)
    return SqsConsumer(
        queue_name=name,
        queue_url=await queue_url(resources.aws.sqs, name),
        sqs=resources.aws.sqs,
        handlers=handlers,
        session_factory=resources.session_factory,
        telemetry=resources.telemetry,
        resources=resources,
        config=ConsumerConfig(
            batch_size=settings.consumer_batch_size,
            concurrency=settings.consumer_concurrency,
            wait_seconds=settings.consumer_wait_seconds,
            visibility_seconds=settings.consumer_visibility_seconds,
            retry_base_seconds=settings.consumer_retry_base_seconds,
        ),
    )


async def run_worker(
    definition: ServiceDefinition[Any, Any],
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
            jobs.append((await outbox_relay(r, definition.produces)).run(stop))
        if definition.handlers:
            consumer = await event_consumer(r, definition.name, definition.handlers)
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
