"""The `stories` command: its parser, and a table from each command to what runs it.

The commands a developer runs from a checkout (up, bench, loadtest, demo) are here;
what an operator runs against a deployment (serve, worker, migrate, bootstrap,
create-admin, dlq, ...) is in operate.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from shared.contracts.names import SUBSCRIPTIONS
from shared.service.logging import configure_logging
from stories import operate


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

    reading = commands.add_parser(
        "reading-level",
        help="estimate plain text files' reading level (one JSON line each)",
        description="The estimator content runs on every manuscript: pages split at form "
        "feeds, else at blank lines; one JSON line per file.",
    )
    reading.add_argument(
        "--language", help="the text's language (BCP 47, e.g. pt); default: the one detected"
    )
    reading.add_argument("files", nargs="+", metavar="FILE")
    recommend = commands.add_parser("recommend", help="the next-book recommender (#42)")
    recommend_commands = recommend.add_subparsers(dest="recommend_command", required=True)
    batch = recommend_commands.add_parser(
        "batch",
        help="rank the next books for readers of any reading log (one JSON line each)",
        description="Trains the service's recommender on a CSV of reader,book,at[,completed] "
        "and prints, for each reader of --readers, the top k books they did not read there.",
    )
    batch.add_argument("--interactions", required=True, metavar="FILE", help="reader,book,at CSV")
    batch.add_argument("--readers", required=True, metavar="FILE", help="one reader id a line")
    batch.add_argument("-k", type=int, default=10, help="books per reader (default 10)")
    levels = commands.add_parser("reading-levels", help="the reading-level estimator's thresholds")
    levels_commands = levels.add_subparsers(dest="levels_command", required=True)
    refit = levels_commands.add_parser(
        "fit",
        help="refit each language's thresholds from reviewers' confirmed levels",
        description="One JSON line per language: its confirmed levels, the thresholds fitted "
        "on them (stored unless --dry-run) and how well they and the word-count rule agree.",
    )
    refit.add_argument(
        "--min-confirmed", type=int, default=20, help="confirmed levels a language needs"
    )
    refit.add_argument("--dry-run", action="store_true", help="report, store nothing")

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


def _up(args: argparse.Namespace) -> int:
    from stories.embedded import embedded_logging
    from stories.embedded import main as run_embedded

    level, as_json = embedded_logging(os.environ)
    configure_logging(level, json=as_json)
    run_embedded(
        args.host, args.data_dir, embedded_aws_port(args), args.base_port, args.gateway_port
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from stories.bench.run import run_benchmarks

    configure_logging("WARNING", json=False)
    return run_benchmarks(
        args.names,
        duration=args.duration,
        connections=args.connections,
        events=args.events,
        emulator=args.emulator,
    )


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
        from stories.demo import build_demo, credentials
        from stories.demo.library import DemoError
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


def _reading_level(args: argparse.Namespace) -> int:
    from stories.reading import reading_level

    return reading_level(args)


def _reading_levels(args: argparse.Namespace) -> int:
    from stories.reading import reading_levels

    return reading_levels(args)


def _recommend(args: argparse.Namespace) -> int:
    from stories.recommend import batch

    return batch(args)


def embedded_aws_port(args: argparse.Namespace) -> int:
    """The emulator's port moves with --base-port, so two runs side by side do not
    fight over it (8001 and 4599 by default; --base-port 9001 gives 5599)."""
    if args.aws_port is not None:
        return int(args.aws_port)
    return 4599 + int(args.base_port) - 8001


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Each command and what runs it: the parser above names them, and a new command
# is one line here (a test checks the two agree).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": _up,
    "bench": _bench,
    "loadtest": _loadtest,
    "demo": _demo,
    "reading-level": _reading_level,
    "reading-levels": _reading_levels,
    "recommend": _recommend,
    **operate.COMMANDS,
}
FROM_A_CHECKOUT = frozenset({"bench", "loadtest"})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in FROM_A_CHECKOUT and not _from_a_checkout():
        print(f"stories {args.command} runs from a checkout of the repository, not in the image")
        return 2
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
