"""The `stories` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.bus.provision import bootstrap, peek_dead_letters, redrive_dead_letters
from shared.clients.aws import AwsClients, open_aws_clients
from shared.clients.db import unit_of_work
from shared.contracts.names import SUBSCRIPTIONS, ResourceNames, topology_plan
from shared.resources import open_resources
from shared.service.logging import configure_logging
from shared.service.migrations import upgrade
from shared.service.runtime import install_stop_signals, run_worker, serve_api, serve_in_processes
from shared.settings import AWS_SETTINGS, DATABASE_SETTINGS, ServiceSettings, checking_only


class PlatformSettings(ServiceSettings):
    """Settings for platform-wide commands (bootstrap, dlq) that belong to no one service."""

    model_config = SettingsConfigDict(env_prefix="STORIES_")
    service_name: ClassVar[str] = "platform"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stories", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from stories.registry import SERVICES

    names = sorted(SERVICES)

    up = commands.add_parser("up", help="run the whole platform in one process (embedded defaults)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--data-dir", type=Path, default=Path(".stories"))
    up.add_argument(
        "--aws-port",
        type=int,
        default=None,
        help="port of the in-process AWS emulator (default 4599, moved as far as --base-port is)",
    )
    up.add_argument(
        "--base-port", type=int, default=8001, help="content's port; the others follow it"
    )
    up.add_argument(
        "--gateway-port",
        type=int,
        default=None,
        help="the one origin serving every public route (default: --base-port - 1, 8000)",
    )

    serve = commands.add_parser("serve", help="run one service's API")
    serve.add_argument("service", choices=names)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--processes",
        type=int,
        help="API processes sharing the port (default: the service's API_PROCESSES, 1)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    worker = commands.add_parser("worker", help="run one service's outbox relay and consumer")
    worker.add_argument("service", choices=names)
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.add_argument("--metrics-port", type=int, help="serve the worker's Prometheus metrics")

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("services", nargs="*", metavar="SERVICE", help=f"default: all of {names}")

    commands.add_parser("bootstrap", help="create topics, queues, DLQs, subscriptions, buckets")
    topology = commands.add_parser(
        "topology", help="print what bootstrap creates, as JSON (read by LocalStack's ready.d)"
    )
    topology.add_argument("--prefix", default="stories-", help="the deployment's resource prefix")
    demo = commands.add_parser(
        "demo",
        help="fill a running platform with a demo library, users and a month of reading",
    )
    demo.add_argument("--url", default="http://127.0.0.1:8000", help="the platform's gateway")
    demo.add_argument(
        "--admin-email",
        help="an ADMIN to start from (default: the embedded run's; password from "
        "STORIES_ADMIN_PASSWORD, else the embedded run's file in --data-dir)",
    )
    demo.add_argument("--data-dir", type=Path, default=Path(".stories"))
    commands.add_parser(
        "openapi",
        help="print the gateway's merged OpenAPI document (infra/gateway/openapi.json)",
    )
    commands.add_parser(
        "gateway-nginx",
        help="print compose's gateway configuration (infra/gateway/nginx.conf)",
    )
    commands.add_parser(
        "contracts", help="print what a deployment must give each service, as JSON (for infra/)"
    )

    admin = commands.add_parser("create-admin", help="create the first ADMIN (or promote a user)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="default: read from STORIES_ADMIN_PASSWORD")
    admin.add_argument("--name", default="Administrator")

    commands.add_parser(
        "rotate-signing-key",
        help="add a JWT signing key; it signs after the activation delay, old keys retire later",
    )

    dlq = commands.add_parser("dlq", help="dead-letter queues")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    redrive = dlq_commands.add_parser("redrive", help="move a consumer's dead letters back")
    redrive.add_argument("queue", choices=sorted(SUBSCRIPTIONS), help="the consuming service")
    listing = dlq_commands.add_parser(
        "list",
        help="a consumer's dead letters, one JSON line each, with the reason (left in place)",
    )
    listing.add_argument("queue", choices=sorted(SUBSCRIPTIONS), help="the consuming service")

    metrics = commands.add_parser("metrics", help="the metrics service's aggregates")
    metrics_commands = metrics.add_subparsers(dest="metrics_command", required=True)
    metrics_commands.add_parser(
        "rebuild", help="recompute every aggregate from the stored event log (one transaction)"
    )

    xapi = commands.add_parser("xapi", help="xAPI statements to the learning record store")
    xapi_commands = xapi.add_subparsers(dest="xapi_command", required=True)
    replay = xapi_commands.add_parser(
        "replay",
        help="send the statements of every logged event since a time again (a new LRS)",
    )
    replay.add_argument(
        "--since", required=True, type=_moment, help="RFC 3339 with a zone, or a date (UTC)"
    )

    bench = commands.add_parser("bench", help="run benchmarks and print figures beside baselines")
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    bench.add_argument("--connections", type=int, default=64)
    bench.add_argument("--events", type=int, default=1000, help="events in the flat-out run")
    bench.add_argument(
        "--emulator",
        choices=["moto", "localstack"],
        default="moto",
        help="the AWS emulator of the metrics benchmark",
    )
    loadtest = commands.add_parser(
        "loadtest",
        help="the whole platform under its real peak (and flat out), beside a floor of bare apps",
    )
    loadtest.add_argument(
        "--users", type=int, default=1000, help="concurrent readers (connections)"
    )
    loadtest.add_argument("--readers", type=int, default=1000, help="reader accounts to create")
    loadtest.add_argument("--books", type=int, default=100, help="books to publish")
    loadtest.add_argument(
        "--think-ms", type=int, default=500, help="a reader's pause after each answer"
    )
    loadtest.add_argument("--steady", type=int, default=30, help="seconds of steady peak load")
    loadtest.add_argument("--saturation", type=int, default=20, help="seconds flat out")
    loadtest.add_argument(
        "--phases", default="peak,saturation", help="which loads to run (peak, saturation)"
    )
    loadtest.add_argument("--report-dir", type=Path, default=Path(".stories/loadtest"))
    loadtest.add_argument(
        "--target",
        nargs="*",
        metavar="SERVICE=URL",
        help="drive a running platform instead (all four of access, content, delivery, metrics)",
    )
    loadtest.add_argument(
        "--emulator",
        choices=["moto", "localstack"],
        default="moto",
        help="the AWS emulator of the run (localstack: after scripts/ensure-localstack)",
    )
    loadtest.add_argument("--admin-email", help="an ADMIN of the target (with --target)")
    loadtest.add_argument("--admin-password", help="default: STORIES_ADMIN_PASSWORD")
    return parser


def _from_a_checkout() -> bool:
    # The image leaves the benchmarks and the load test out (.dockerignore).
    return (Path(__file__).parent / "bench").is_dir()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from stories.registry import SERVICES

    if args.command == "up":
        from stories.embedded import embedded_logging
        from stories.embedded import main as run_embedded

        level, as_json = embedded_logging(os.environ)
        configure_logging(level, json=as_json)

        run_embedded(
            args.host, args.data_dir, embedded_aws_port(args), args.base_port, args.gateway_port
        )
        return 0
    if args.command in ("bench", "loadtest") and not _from_a_checkout():
        print(f"stories {args.command} runs from a checkout of the repository, not in the image")
        return 2
    if args.command == "bench":
        from stories.bench.run import run_benchmarks

        configure_logging("WARNING", json=False)
        return run_benchmarks(
            args.names,
            duration=args.duration,
            connections=args.connections,
            events=args.events,
            emulator=args.emulator,
        )
    if args.command == "loadtest":
        return _loadtest(args)
    if args.command == "serve":
        service = SERVICES[args.service]
        settings = service.settings_class()
        configure_logging(settings.log_level, json=settings.log_json)
        processes = args.processes or settings.api_processes
        port = args.port or service.default_port
        if processes > 1 and not args.reuse_port:
            return serve_in_processes(args.service, args.host, port, processes)
        app = service.create_app(settings, None)

        async def serve() -> None:
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

        asyncio.run(serve())
        return 0
    if args.command == "worker":
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
    if args.command == "migrate":
        configure_logging("INFO", json=False)

        async def migrate() -> None:
            unknown = set(args.services) - set(SERVICES)
            if unknown:
                raise SystemExit(f"unknown services: {sorted(unknown)}")
            for name in args.services or SERVICES:
                service = SERVICES[name]
                with checking_only(*DATABASE_SETTINGS):
                    settings = service.settings_class()
                await upgrade(service.migrations, settings.database_url, settings.database_schema)
                print(f"{name}: migrated")

        asyncio.run(migrate())
        return 0
    if args.command == "demo":
        return _demo(args)
    if args.command == "openapi":
        from stories.gateway import openapi_json, platform_openapi

        print(openapi_json(platform_openapi()), end="")
        return 0
    if args.command == "gateway-nginx":
        from stories.gateway import nginx_conf

        print(nginx_conf(), end="")
        return 0
    if args.command == "contracts":
        from stories.deployment import contracts_json

        print(contracts_json(), end="")
        return 0
    if args.command == "topology":
        print(topology_json(args.prefix), end="")
        return 0
    if args.command == "bootstrap":
        configure_logging("INFO", json=False)
        return asyncio.run(_bootstrap())
    if args.command == "create-admin":
        configure_logging("WARNING", json=False)
        password = args.password or os.environ.get("STORIES_ADMIN_PASSWORD")
        if not password:
            print("give --password or set STORIES_ADMIN_PASSWORD")
            return 2
        from stories.access_admin import create_admin

        return asyncio.run(create_admin(args.email, password, args.name))
    if args.command == "rotate-signing-key":
        configure_logging("WARNING", json=False)
        from stories.access_admin import rotate_key

        return asyncio.run(rotate_key())
    if args.command == "metrics":
        configure_logging("INFO", json=False)
        return asyncio.run(_rebuild_metrics())
    if args.command == "xapi":
        configure_logging("INFO", json=False)
        return asyncio.run(_replay_statements(args.since))
    if args.command == "dlq":
        configure_logging("INFO", json=False)
        if args.dlq_command == "list":
            return asyncio.run(_list_dead_letters(args.queue))
        return asyncio.run(_redrive(args.queue))
    return 2


def _loadtest(args: argparse.Namespace) -> int:
    from stories.loadtest import run_loadtest
    from stories.loadtest.platform import ADMIN_EMAIL, ADMIN_PASSWORD
    from stories.registry import SERVICES

    configure_logging("WARNING", json=False)
    targets = None
    if args.target:
        targets = dict(item.split("=", 1) for item in args.target)
        if set(targets) != set(SERVICES):
            print(f"--target needs all of {sorted(SERVICES)} as SERVICE=URL")
            return 2
    return run_loadtest(
        users=args.users,
        readers=args.readers,
        books=args.books,
        think_ms=args.think_ms,
        steady_seconds=args.steady,
        saturation_seconds=args.saturation,
        phases=[p.strip() for p in args.phases.split(",") if p.strip()],
        report_dir=args.report_dir,
        targets=targets,
        admin_email=args.admin_email or ADMIN_EMAIL,
        admin_password=args.admin_password
        or os.environ.get("STORIES_ADMIN_PASSWORD", ADMIN_PASSWORD),
        emulator=args.emulator,
    )


def _demo(args: argparse.Namespace) -> int:
    import httpx

    try:
        from stories.demo import DemoError, build_demo, credentials
    except ImportError:  # the image leaves it out, as it does the load test
        print("stories demo runs from a checkout: `make demo` (after `make install`)")
        return 2
    from stories.embedded import ADMIN_EMAIL, ADMIN_PASSWORD_FILE

    configure_logging("WARNING", json=False)
    email = args.admin_email or ADMIN_EMAIL
    password = os.environ.get("STORIES_ADMIN_PASSWORD")
    if password is None:
        kept = args.data_dir / ADMIN_PASSWORD_FILE
        if not kept.exists():
            print(f"no admin password: set STORIES_ADMIN_PASSWORD (none kept in {kept})")
            return 2
        password = kept.read_text().strip()
    try:
        demo = asyncio.run(build_demo(args.url, email, password))
    except (DemoError, httpx.HTTPError) as exc:
        print(f"the demo stopped: {exc!r}")
        return 1
    print(credentials(demo, args.url.rstrip("/")))
    return 0


def embedded_aws_port(args: argparse.Namespace) -> int:
    """The emulator's port moves with --base-port, so two runs side by side do not
    fight over it (8001 and 4599 by default; --base-port 9001 gives 5599)."""
    if args.aws_port is not None:
        return int(args.aws_port)
    return 4599 + int(args.base_port) - 8001


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


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


if __name__ == "__main__":
    sys.exit(main())
