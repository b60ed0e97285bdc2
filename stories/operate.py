"""What an operator runs against a deployment: the image's own processes (serve,
worker, migrate) and the commands around them (bootstrap the bus, create the first
ADMIN, rotate the signing key, rebuild the metrics, replay xAPI, the dead letters),
and the documents a deployment is checked against (openapi, gateway-nginx,
contracts, topology). Each command is a function of its parsed arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.bus.provision import bootstrap, peek_dead_letters, redrive_dead_letters
from shared.clients.aws import AwsClients, open_aws_clients
from shared.clients.db import unit_of_work
from shared.contracts.names import ResourceNames, topology_plan
from shared.resources import open_resources
from shared.service.logging import configure_logging
from shared.service.migrations import upgrade
from shared.service.runtime import install_stop_signals, run_worker, serve_api, serve_in_processes
from shared.settings import AWS_SETTINGS, DATABASE_SETTINGS, ServiceSettings, checking_only


class PlatformSettings(ServiceSettings):
    """Settings for platform-wide commands (bootstrap, dlq) that belong to no one service."""

    model_config = SettingsConfigDict(env_prefix="STORIES_")
    service_name: ClassVar[str] = "platform"


def topology_json(prefix: str) -> str:
    return json.dumps(topology_plan(ResourceNames(prefix)), indent=2) + "\n"


async def _bootstrap() -> int:
    with checking_only(*AWS_SETTINGS):
        settings = PlatformSettings()
    async with AsyncExitStack() as stack:
        aws = await open_aws_clients(settings, stack)
        created = await bootstrap(
            sns=aws.sns,
            sqs=aws.sqs,
            s3=aws.s3,
            names=settings.resource_names,
            region=settings.aws_region,
        )
    for producer, arn in created["topics"].items():
        print(f"topic  {producer:<9} {arn}")
    for consumer, url in created["queues"].items():
        print(f"queue  {consumer:<9} {url}")
    return 0


async def _replay_statements(since: datetime) -> int:
    from services.metrics.settings import MetricsSettings
    from services.metrics.xapi import replay

    with checking_only(*DATABASE_SETTINGS):
        settings = MetricsSettings()
    async with AsyncExitStack() as stack:
        r = await open_resources(settings, stack)
        async with unit_of_work(r.session_factory) as session:
            queued = await replay(session, since)
    print(f"xapi: {queued} statement(s) since {since.isoformat()} queued for the LRS")
    if settings.xapi_lrs_url is None:
        print("xapi: METRICS_XAPI_LRS_URL is not set: the worker sends nothing until it is")
    return 0


async def _rebuild_metrics() -> int:
    from services.metrics.projection import rebuild
    from services.metrics.settings import MetricsSettings

    with checking_only(*DATABASE_SETTINGS, "redis_url"):  # the sketches live in Redis
        settings = MetricsSettings()
    async with AsyncExitStack() as stack:
        r = await open_resources(settings, stack)
        async with r.session_factory() as session:
            applied = await rebuild(session, r)
    print(f"metrics: rebuilt from {applied} logged event(s)")
    return 0


async def _list_dead_letters(consumer: str) -> int:
    async with _platform_aws() as (aws, names):
        letters = await peek_dead_letters(aws.sqs, names, consumer)
    for letter in letters:
        print(json.dumps(letter, ensure_ascii=False))
    print(f"{len(letters)} message(s) in {names.dead_letter_queue(consumer)}", file=sys.stderr)
    return 0


async def _redrive(consumer: str) -> int:
    async with _platform_aws() as (aws, names):
        moved = await redrive_dead_letters(aws.sqs, names, consumer)
    print(f"moved {moved} message(s) from {names.dead_letter_queue(consumer)}")
    return 0


@asynccontextmanager
async def _platform_aws() -> AsyncIterator[tuple[AwsClients, ResourceNames]]:
    """The AWS clients and resource names of a platform-wide command (dlq)."""
    with checking_only(*AWS_SETTINGS):
        settings = PlatformSettings()
    async with AsyncExitStack() as stack:
        yield await open_aws_clients(settings, stack), settings.resource_names


def serve(args: argparse.Namespace) -> int:
    from stories.registry import SERVICES

    service = SERVICES[args.service]
    settings = service.settings_class()
    configure_logging(settings.log_level, json=settings.log_json)
    processes = args.processes or settings.api_processes
    port = args.port or service.default_port
    if processes > 1 and not args.reuse_port:
        return serve_in_processes(args.service, args.host, port, processes)
    app = service.create_app(settings, None)

    async def serving() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await serve_api(
            app,
            args.host,
            port,
            stop,
            trusted_proxies=settings.trusted_proxies,
            reuse_port=args.reuse_port,
        )

    asyncio.run(serving())
    return 0


def worker(args: argparse.Namespace) -> int:
    from stories.registry import SERVICES

    service = SERVICES[args.service]
    settings = service.settings_class()
    configure_logging(settings.log_level, json=settings.log_json)

    async def work() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        metrics = (args.metrics_host, args.metrics_port) if args.metrics_port else None
        await run_worker(service, settings, stop, metrics_address=metrics)

    asyncio.run(work())
    return 0


def migrate(args: argparse.Namespace) -> int:
    from stories.registry import SERVICES

    configure_logging("INFO", json=False)

    async def migrating() -> None:
        unknown = set(args.services) - set(SERVICES)
        if unknown:
            raise SystemExit(f"unknown services: {sorted(unknown)}")
        for name in args.services or SERVICES:
            service = SERVICES[name]
            with checking_only(*DATABASE_SETTINGS):
                settings = service.settings_class()
            await upgrade(service.migrations, settings.database_url, settings.database_schema)
            print(f"{name}: migrated")

    asyncio.run(migrating())
    return 0


def openapi(_args: argparse.Namespace) -> int:
    from stories.gateway.openapi import openapi_json, platform_openapi

    print(openapi_json(platform_openapi()), end="")
    return 0


def gateway_nginx(_args: argparse.Namespace) -> int:
    from stories.gateway.nginx import nginx_conf

    print(nginx_conf(), end="")
    return 0


def contracts(_args: argparse.Namespace) -> int:
    from stories.deployment import contracts_json

    print(contracts_json(), end="")
    return 0


def topology(args: argparse.Namespace) -> int:
    print(topology_json(args.prefix), end="")
    return 0


def bootstrap_bus(_args: argparse.Namespace) -> int:
    configure_logging("INFO", json=False)
    return asyncio.run(_bootstrap())


def create_admin(args: argparse.Namespace) -> int:
    configure_logging("WARNING", json=False)
    password = args.password or os.environ.get("STORIES_ADMIN_PASSWORD")
    if not password:
        print("give --password or set STORIES_ADMIN_PASSWORD")
        return 2
    from stories.access_admin import create_admin as creating

    return asyncio.run(creating(args.email, password, args.name))


def rotate_signing_key(_args: argparse.Namespace) -> int:
    configure_logging("WARNING", json=False)
    from stories.access_admin import rotate_key

    return asyncio.run(rotate_key())


def rebuild_metrics(_args: argparse.Namespace) -> int:
    configure_logging("INFO", json=False)
    return asyncio.run(_rebuild_metrics())


def replay_statements(args: argparse.Namespace) -> int:
    configure_logging("INFO", json=False)
    return asyncio.run(_replay_statements(args.since))


def dead_letters(args: argparse.Namespace) -> int:
    configure_logging("INFO", json=False)
    if args.dlq_command == "list":
        return asyncio.run(_list_dead_letters(args.queue))
    return asyncio.run(_redrive(args.queue))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": serve,
    "worker": worker,
    "migrate": migrate,
    "openapi": openapi,
    "gateway-nginx": gateway_nginx,
    "contracts": contracts,
    "topology": topology,
    "bootstrap": bootstrap_bus,
    "create-admin": create_admin,
    "rotate-signing-key": rotate_signing_key,
    "metrics": rebuild_metrics,
    "xapi": replay_statements,
    "dlq": dead_letters,
}
