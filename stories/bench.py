"""`stories bench`: named benchmarks, each figure printed beside a baseline
measured in the same run on the same machine (which is shared and noisy, so
only ratios within one run mean much).

- plumbing: a bare endpoint through our app factory vs. the same endpoint in a
  plain FastAPI app; uvicorn with one worker, `wrk` in a separate process.
- events: outbox -> SNS -> SQS -> consumer (the metrics service's real handler,
  PostgreSQL) vs. a raw SQS send/receive/delete loop, on one moto server:
  producers flat out (throughput) and a steady 100 events/s (latency). moto's
  receive slows as a queue grows, so flat-out figures are the emulator's as
  much as ours; compare rows only within a run.
- metrics: the metrics consumer vs. the raw SQS loop on waiting events, and the
  lag from a producer's commit until /v1/metrics/overview shows the event
  (stories/bench_metrics.py); `--emulator localstack` runs it on LocalStack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from services.metrics.main import SERVICE as METRICS
from services.metrics.settings import MetricsSettings
from shared.app import open_resources
from shared.consumer import EventContext
from shared.db import drop_schema, ensure_database, unit_of_work
from shared.events import EventData, Producer, SubmissionCreated
from shared.migrations import upgrade
from shared.outbox import record_event
from shared.runtime import event_consumer, outbox_relay
from shared.topology import bootstrap
from stories.emulator import free_port, moto_server_process

BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_test"
)


@dataclass
class Figure:
    benchmark: str
    row: str
    throughput: float
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline_of: str | None = None  # the row this one is compared with
    target_ratio: float | None = None
    target_p99_ms: float | None = None


# --- HTTP load with wrk -----------------------------------------------------------------

_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from `wrk --latency` output."""
    rps = _WRK_RPS.search(output)
    latencies = {m[0]: float(m[1]) * _UNIT_MS[m[2]] for m in _WRK_LATENCY.findall(output)}
    if rps is None or set(latencies) != {"50", "99"}:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if errors:
        raise ValueError(f"the server answered {errors.group(1)} errors under load")
    return float(rps.group(1)), latencies["50"], latencies["99"]


def pinned(cpu: int) -> list[str]:
    """Pin a process to one CPU: the server and the load generator never fight over a core."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2 or os.environ.get("BENCH_PIN") == "0":
        return []
    return [taskset, "-c", str(cpu)]


SERVER_CPU, LOAD_CPU = 0, 1


def wrk_script(
    path: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: str = ""
) -> str:
    """A wrk Lua script that sends one fixed request; returns its file path."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    if body:
        lines.append(f"wrk.body = {json.dumps(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    handle, script = tempfile.mkstemp(suffix=".lua", prefix="stories-wrk-")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(lines) + "\n")
    return script


def run_wrk(
    url: str, *, seconds: float, connections: int, script: str | None = None
) -> tuple[float, float, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    extra = ["-s", script] if script else []
    result = subprocess.run(
        [
            *pinned(LOAD_CPU),
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return parse_wrk(result.stdout)


@contextlib.contextmanager
def uvicorn_process(
    factory: str, env: dict[str, str] | None = None, ready_path: str = "/bare", *, pin: bool = True
) -> Iterator[str]:
    """One uvicorn worker serving `factory`, as in production (uvloop, httptools)."""
    port = free_port()
    # BENCH_PROFILE=DIR: each server runs under py-spy, its samples (collapsed
    # stacks) written to DIR/<factory>-<port>.txt when it stops: where the time goes.
    profile_dir = os.environ.get("BENCH_PROFILE")
    profiler = (
        [str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "250", "--format",
         "raw", "--output", f"{profile_dir}/{factory.split(':')[0]}-{port}.txt", "--"]
        if profile_dir
        else []
    )  # fmt: skip
    process = subprocess.Popen(
        [
            *(pinned(SERVER_CPU) if pin else []), *profiler, sys.executable, "-m", "uvicorn",
            "--factory", factory,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--log-level", "warning", "--no-access-log",
            # The loop `stories serve` uses; BENCH_LOOP=uvloop compares the other.
            "--loop", os.environ.get("BENCH_LOOP", "asyncio"),
        ],
        env={**os.environ, **(env or {})},
        start_new_session=bool(profiler),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # Under py-spy, beside a whole platform sampled the same way, a start can
        # take minutes on two cores (seen: a floor app not up after 30 s).
        deadline = time.monotonic() + (180 if profiler else 30)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"{factory} exited with {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{factory} not ready at {url}{ready_path} in time")
            time.sleep(0.1)
        yield url
    finally:
        if profiler:  # both stop on SIGINT: uvicorn gracefully, then py-spy writes the profile
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.terminate()
        process.wait(timeout=30)


ROUNDS = 3


def median_round(
    url: str, *, seconds: float, connections: int, script: str | None = None
) -> tuple[float, float, float]:
    """The median (by throughput) of ROUNDS runs: one noisy run on a shared
    machine neither makes nor breaks a figure. Every row uses this same rule."""
    runs = sorted(
        (
            run_wrk(url, seconds=seconds, connections=connections, script=script)
            for _ in range(ROUNDS)
        ),
        key=lambda measured: measured[0],
    )
    return runs[len(runs) // 2]


def interleaved_rounds(
    urls: Sequence[str], *, seconds: float, connections: int, rounds: int = ROUNDS
) -> list[tuple[float, float, float]]:
    """The median round of each server, measured in turns (A, B, C, A, B, C, ...):
    where rows differ by a few per cent, a machine that slows for a minute must
    slow every row alike, not the one measured then."""
    runs: list[list[tuple[float, float, float]]] = [[] for _ in urls]
    for _ in range(rounds):
        for index, url in enumerate(urls):
            runs[index].append(run_wrk(url, seconds=seconds, connections=connections))
    return [sorted(measured)[len(measured) // 2] for measured in runs]


def measure_bare(*, duration: float, connections: int) -> tuple[float, float, float]:
    """The bare endpoint every service benchmark is compared with, measured in the same run."""
    with uvicorn_process("stories.bench_apps:plain_app") as url:
        run_wrk(f"{url}/bare", seconds=3, connections=connections)
        return median_round(f"{url}/bare", seconds=duration, connections=connections)


def bench_plumbing(*, duration: float, connections: int, rounds: int = ROUNDS) -> list[Figure]:
    apps = {
        "plain FastAPI, bare endpoint": "stories.bench_apps:plain_app",
        "our app factory, same endpoint": "stories.bench_apps:platform_app",
    }
    runs: dict[str, list[tuple[float, float, float]]] = {row: [] for row in apps}
    with tempfile.TemporaryDirectory() as data_dir:
        # Alternate the two servers so drift on the shared machine hits both,
        # then keep each row's median run (by throughput), as every row does.
        for _ in range(rounds):
            for row, factory in apps.items():
                with uvicorn_process(factory, {"BENCH_DATA_DIR": data_dir}) as url:
                    run_wrk(f"{url}/bare", seconds=3, connections=connections)  # warm-up
                    runs[row].append(
                        run_wrk(f"{url}/bare", seconds=duration, connections=connections)
                    )
    median = {row: sorted(r, key=lambda m: m[0])[len(r) // 2] for row, r in runs.items()}
    plain, ours = apps
    return [
        Figure("plumbing", plain, *_rps(median[plain])),
        Figure("plumbing", ours, *_rps(median[ours]), baseline_of=plain, target_ratio=0.8),
    ]


def _rps(measured: tuple[float, float, float]) -> tuple[float, str, float, float]:
    rps, p50, p99 = measured
    return rps, "req/s", p50, p99


# --- event throughput -------------------------------------------------------------------


def _percentiles(latencies: list[float], rate: float | None) -> tuple[float | None, float | None]:
    if rate is None:
        return None, None  # flat out, latency only says how long the queue grew
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def _paced(count: int, rate: float | None, send_ten: Callable[[int], Any]) -> None:
    """Call `send_ten(n)` for batches of up to 10 until `count`, at `rate`/s or flat out."""
    started = time.perf_counter()
    for start in range(0, count, 10):
        if rate is not None:
            due = started + start / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await send_ten(min(10, count - start))


def _mode(rate: float | None, count: int) -> str:
    return f"{count} flat out" if rate is None else f"{rate:.0f}/s steady"


async def receive_and_delete(sqs: Any, url: str) -> list[dict[str, Any]]:
    """One turn of the raw baseline loop: receive up to 10, batch-delete them."""
    response = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages: list[dict[str, Any]] = response.get("Messages", [])
    if messages:
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return messages


async def raw_sqs_loop(sqs: Any, url: str, count: int, rate: float | None) -> Figure:
    """Baseline: send in batches of 10; one loop receives 10 at a time and batch-deletes.

    The sends run alongside the loop, flat out (rate None: throughput) or paced
    (latency, send -> delete).
    """

    async def send_ten(n: int) -> None:
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"sent": time.time()})} for i in range(n)
            ],
        )

    producer = asyncio.create_task(_paced(count, rate, send_ten))
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < count:
        messages = await receive_and_delete(sqs, url)
        done = time.time()
        latencies += [done - json.loads(m["Body"])["sent"] for m in messages]
    elapsed = time.perf_counter() - started
    await producer
    p50, p99 = _percentiles(latencies, rate)
    row = f"raw SQS loop, {_mode(rate, count)}"
    return Figure("events", row, count / elapsed, "ev/s", p50, p99)


async def outbox_pipeline(
    resources: Any, settings: MetricsSettings, count: int, rate: float | None
) -> Figure:
    """Producers commit events (10 per transaction) -> relay -> SNS -> SQS -> consumer.

    The consumer runs the metrics service's real handler on PostgreSQL, one
    commit per batch. Producers commit flat out (rate None: throughput) or paced
    (latency, producer commit -> consumer commit).
    """
    committed_at: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    finished = asyncio.Event()

    def measured(handler: Callable[[EventContext, Any], Any]) -> Any:
        async def handle(context: EventContext, data: EventData) -> None:
            await handler(context, data)
            event_id = context.envelope.id

            async def done() -> None:
                latencies.append(time.time() - committed_at[event_id])
                if len(latencies) >= count:
                    finished.set()

            context.after_commit(done)

        return handle

    handlers = {contract: measured(h) for contract, h in METRICS.handlers.items()}
    relay = await outbox_relay(resources, Producer.CONTENT)
    consumer = await event_consumer(resources, "metrics", handlers)

    async def commit_ten(n: int) -> None:
        async with unit_of_work(resources.session_factory) as session:
            ids = [record_event(session, _submission_created()).id for _ in range(n)]
        committed_at.update(dict.fromkeys(ids, time.time()))

    producer = asyncio.create_task(_paced(count, rate, commit_ten))
    stop = asyncio.Event()
    started = time.perf_counter()
    workers = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    await asyncio.wait_for(finished.wait(), timeout=900)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*workers)
    await producer
    p50, p99 = _percentiles(latencies, rate)
    return Figure(
        "events",
        f"outbox->SNS->SQS->consumer, {_mode(rate, count)}",
        count / elapsed,
        "ev/s",
        p50,
        p99,
        baseline_of=f"raw SQS loop, {_mode(rate, count)}",
    )


async def bench_events(
    *, events: int, steady_rate: float = 100.0, steady_seconds: float = 10.0
) -> list[Figure]:
    tag = uuid.uuid4().hex[:8]
    await ensure_database(BENCH_DATABASE_URL)
    with moto_server_process() as aws_url:
        settings = MetricsSettings(
            environment="test",
            database_url=BENCH_DATABASE_URL,
            database_schema=f"bench_{tag}",
            redis_url="memory://bench",
            aws_endpoint_url=aws_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - the emulator takes any
            resource_prefix=f"bench{tag}-",
            outbox_poll_seconds=0.05,
            # The worker's consumer as deployed, answering within a second when idle.
            consumer_batch_size=10,
            consumer_concurrency=20,
            consumer_wait_seconds=1,
        )
        await upgrade(METRICS.migrations, settings.database_url, settings.database_schema)
        figures = []
        try:
            async with AsyncExitStack() as stack:
                resources = await open_resources(settings, stack)
                aws = resources.aws
                await bootstrap(
                    sns=aws.sns, sqs=aws.sqs, s3=aws.s3, names=settings.resource_names,
                    region=settings.aws_region,
                )  # fmt: skip
                raw_url = (await aws.sqs.create_queue(QueueName=f"bench{tag}-raw"))["QueueUrl"]
                for rate in (None, steady_rate):
                    count = events if rate is None else int(steady_rate * steady_seconds)
                    figures.append(await raw_sqs_loop(aws.sqs, raw_url, count, rate))
                    figures.append(await outbox_pipeline(resources, settings, count, rate))
        finally:
            await drop_schema(settings.database_url, settings.database_schema)
    return figures


def _submission_created() -> SubmissionCreated:
    # Only metrics subscribes to this type, so every event makes one SQS message.
    return SubmissionCreated(
        submission_id=uuid.uuid4(), author_id=uuid.uuid4(), language="en", category="animals"
    )


# --- the table --------------------------------------------------------------------------


def format_table(figures: list[Figure]) -> str:
    by_row = {(f.benchmark, f.row): f for f in figures}
    header = (
        f"{'benchmark':<10} {'row':<44} {'throughput':>16} {'p50':>10} {'p99':>10}  vs baseline"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        p50 = f"{f.p50_ms:.2f} ms" if f.p50_ms is not None else "-"
        p99 = f"{f.p99_ms:.2f} ms" if f.p99_ms is not None else "-"
        versus = "(baseline)"
        baseline = by_row.get((f.benchmark, f.baseline_of or ""))
        if baseline is not None:
            ratio = f.throughput / baseline.throughput
            versus = f"{ratio:.2f}x"
            if f.target_ratio is not None:
                verdict = "meets" if ratio >= f.target_ratio else "MISSES"
                versus += f" ({verdict} target {f.target_ratio:.2f})"
        if f.target_p99_ms is not None and f.p99_ms is not None:
            verdict = "meets" if f.p99_ms <= f.target_p99_ms else "MISSES"
            versus += f" [p99 {verdict} {f.target_p99_ms:.0f} ms]"
        throughput = f"{f.throughput:>10,.0f} {f.unit:<5}"
        lines.append(f"{f.benchmark:<10} {f.row:<44} {throughput} {p50:>10} {p99:>10}  {versus}")
    return "\n".join(lines)


def run_benchmarks(
    names: list[str], *, duration: float, connections: int, events: int, emulator: str = "moto"
) -> int:
    from stories.bench_metrics import bench_metrics
    from stories.bench_redis import bench_redis_pause
    from stories.bench_services import bench_access, bench_content, bench_delivery

    benchmarks: dict[str, Callable[[], list[Figure]]] = {
        "plumbing": lambda: bench_plumbing(duration=duration, connections=connections),
        "access": lambda: asyncio.run(bench_access(duration=duration, connections=connections)),
        "content": lambda: asyncio.run(bench_content(duration=duration, connections=connections)),
        "delivery": lambda: asyncio.run(bench_delivery(duration=duration, connections=connections)),
        "events": lambda: asyncio.run(bench_events(events=events)),
        "metrics": lambda: asyncio.run(bench_metrics(events=events, emulator=emulator)),
        "redis-pause": lambda: bench_redis_pause(pause_seconds=max(duration, 15.0)),
    }
    unknown = set(names) - set(benchmarks)
    if unknown:
        print(f"unknown benchmarks {sorted(unknown)}; known: {sorted(benchmarks)}")
        return 2
    figures: list[Figure] = []
    for name in names or benchmarks:
        print(f"running {name} ...", flush=True)
        figures += benchmarks[name]()
    print()
    print(format_table(figures))
    results = os.environ.get("BENCH_RESULTS")
    if results:
        with open(results, "w") as out:
            json.dump([asdict(f) for f in figures], out, indent=2)
    return 0
