"""`stories bench redis-pause`: sign-in and links while Redis stalls, under load (#14).

The production-like run (every API and worker its own process, `ENVIRONMENT=
production`, PostgreSQL, a Redis server of the benchmark's own, a moto server),
readers asking for links and reporting pages, and sign-ins at a steady pace. Then
three windows of equal length: Redis up (the baseline, measured in the same run),
Redis paused (SIGSTOP: connections open, nothing answers), and Redis back.

What a stalled Redis may cost: one deadline (REDIS_TIMEOUT_SECONDS, 0.25 s) per
process before its circuit opens, then the degraded paths (limits counted in
process, caches from PostgreSQL). The target: sign-in p99 under 1 s while paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from stories.bench.harness import Figure
from stories.loadtest.platform import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    production_like_platform,
    production_settings,
)
from stories.loadtest.readers import Answer, ReadersAtWork, percentile_ms, register_readers
from stories.loadtest.seed import seed_library
from stories.redis_process import redis_process

BENCH_FAULTS_DATABASE = os.environ.get(
    "BENCH_FAULTS_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_bench_faults",
)
SIGN_IN_P99_TARGET_MS = 1000.0
WINDOWS = ("Redis up", "Redis paused", "Redis back")


def bench_redis_pause(
    *, pause_seconds: float = 15.0, readers: int = 24, sign_ins_per_second: float = 8.0
) -> list[Figure]:
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-redis-")))
        redis_server = stack.enter_context(redis_process())
        platform = stack.enter_context(
            production_like_platform(
                logs,
                database_url=BENCH_FAULTS_DATABASE,
                redis_url=redis_server.url,
                settings=production_settings(),
            )
        )
        library = asyncio.run(
            seed_library(platform.urls, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
                         readers=20, books=4, progress=lambda _: None)
        )  # fmt: skip
        books = [b.id for b in library.books if b.access == "free"]
        load = ReadersAtWork(
            platform.urls,
            register_readers(platform.urls, readers, tag="bench-redis"),
            books,
            sign_in_every=0,
            sign_ins_per_second=sign_ins_per_second,
        )
        with load.running():
            time.sleep(5)  # every process warm, every circuit closed
            for window in WINDOWS:
                with load.during(window, then="after"):
                    if window == "Redis paused":
                        redis_server.pause()
                    time.sleep(pause_seconds)
                    if window == "Redis paused":
                        redis_server.resume()
    figures = []
    for kind in ("sign-in", "link", "progress"):
        for window in WINDOWS:
            answers = load.of(window, kind)
            figures.append(_figure(kind, window, answers, pause_seconds))
    _print_refusals(load)
    return figures


def _figure(kind: str, window: str, answers: list[Answer], seconds: float) -> Figure:
    done = [a.seconds for a in answers if 200 <= a.status < 300]
    return Figure(
        benchmark="redis",
        row=f"{kind}, {window}",
        throughput=len(done) / seconds,
        unit="req/s",
        p50_ms=percentile_ms([a.seconds for a in answers], 50),
        p99_ms=percentile_ms([a.seconds for a in answers], 99),
        baseline_of=None if window == "Redis up" else f"{kind}, Redis up",
        target_p99_ms=SIGN_IN_P99_TARGET_MS
        if (kind, window) == ("sign-in", "Redis paused")
        else None,
    )


def _print_refusals(load: ReadersAtWork) -> None:
    """Every answer that was not a 2xx, by window and status (latencies above count
    every answer, refusals included)."""
    for window in WINDOWS:
        refused: dict[tuple[str, int], int] = {}
        for answer in load.answers:
            if answer.window == window and not 200 <= answer.status < 300:
                key = (answer.kind, answer.status)
                refused[key] = refused.get(key, 0) + 1
        listed = ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(refused.items())) or "none"
        print(f"  not 2xx while {window}: {listed}")
