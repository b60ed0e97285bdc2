"""`stories loadtest`: the whole platform under its real peak, as it is used.

1. Start the production-like run (every service's API and worker as processes
   of their own, PostgreSQL, Redis, a moto server), or target a running one
   (`--target access=URL content=URL delivery=URL metrics=URL`).
2. Fill it through its public APIs: staff of every role, published books in
   several languages (a quarter entitled, granted by a teacher), readers
   signed in (stories/loadtest/seed.py).
3. Restart the APIs (a deploy: every cache empty), then drive the readers'
   mix with wrk, one process per kind of request, each connection one user
   with a think time, beside a trickle of sign-ins, refresh rotations and staff
   at work (stories/loadtest/drive.py). The first 10 s are the cold figures.
4. The same users against four bare FastAPI apps: the floor, this machine's
   physical limit, measured in the same run. Then both again flat out.
5. A table, a JSON and an HTML report with latency over time (report.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from stories.loadtest.drive import Phase, SessionDriver, floor_groups, reader_groups, run_phase
from stories.loadtest.platform import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    RUN_LIMITS,
    SIZING,
    Platform,
    production_like_platform,
)
from stories.loadtest.report import (
    peak_verdicts,
    recovery_verdicts,
    saturation_verdicts,
    text_report,
    write_reports,
)
from stories.loadtest.seed import seed_library

SLICE_SECONDS = 5
COLD_SECONDS = 10


@contextlib.contextmanager
def floor_apps(services: list[str]) -> Iterator[dict[str, str]]:
    """One bare FastAPI app per service, each its own uvicorn process."""
    from stories.bench.harness import uvicorn_process

    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(uvicorn_process("stories.bench.apps:plain_app", pin=False))
            for name in services
        }


def run_loadtest(
    *,
    users: int,
    readers: int,
    books: int,
    think_ms: int,
    steady_seconds: int,
    saturation_seconds: int,
    phases: list[str],
    report_dir: Path,
    targets: dict[str, str] | None = None,
    admin_email: str = ADMIN_EMAIL,
    admin_password: str = ADMIN_PASSWORD,
    emulator: str = "moto",
) -> int:
    started = time.time()
    with contextlib.ExitStack() as stack:
        platform: Platform | None = None
        if targets:
            urls = targets
        else:
            print(f"starting the production-like run: APIs, workers, PostgreSQL, Redis, {emulator}")
            platform = stack.enter_context(production_like_platform(report_dir / "logs", emulator))
            urls = platform.urls
        library = asyncio.run(
            seed_library(
                urls,
                admin_email=admin_email,
                admin_password=admin_password,
                readers=readers,
                books=books,
            )
        )
        print(f"seeded in {time.time() - started:.0f} s: {len(library.books)} books, "
              f"{len(library.readers)} readers")  # fmt: skip
        groups = reader_groups(library, users)
        names = [g.name for g in groups]
        services = sorted({g.service for g in groups} | {"metrics"})
        measured: dict[str, Phase] = {}
        verdicts = []

        if platform is not None:
            took = platform.drain()
            print(f"queues drained in {took:.0f} s: the floor is measured on a quiet machine")
        # The floors first: nothing the platform has left to do (events still
        # flowing through the emulator) can slow them. Then a deploy, and the
        # platform's phases back to back, as a peak followed by an overload.
        # (think time in ms, seconds) of each load
        paces = {
            "peak": (think_ms, COLD_SECONDS + steady_seconds),
            "saturation": (0, saturation_seconds),
        }
        for kind, (think, seconds) in paces.items():
            if kind not in phases:
                continue
            with floor_apps(services) as floor:
                measured[f"{kind} floor"] = run_phase(
                    f"{kind} floor", floor_groups(groups), floor,
                    think_ms=think, seconds=seconds, slice_seconds=SLICE_SECONDS,
                )  # fmt: skip
        if platform is not None:
            print("restarting the APIs: a deploy, every in-process cache empty")
            platform.restart_apis()
        if "peak" in phases:
            with SessionDriver(urls, library, per_second=5) as driver:
                measured["peak"] = run_phase(
                    "peak", groups, urls, think_ms=think_ms,
                    seconds=COLD_SECONDS + steady_seconds, slice_seconds=SLICE_SECONDS,
                    driver=driver,
                )  # fmt: skip
            verdicts += peak_verdicts(measured["peak"], measured["peak floor"], names)
        if "saturation" in phases:
            measured["saturation"] = run_phase(
                "saturation", groups, urls, think_ms=0,
                seconds=saturation_seconds, slice_seconds=SLICE_SECONDS,
            )  # fmt: skip
            # Straight after the overload, the peak's users again: back within target?
            measured["recovery"] = run_phase(
                "recovery", groups, urls, think_ms=think_ms,
                seconds=COLD_SECONDS, slice_seconds=SLICE_SECONDS,
            )  # fmt: skip
            verdicts += saturation_verdicts(
                measured["saturation"], measured["saturation floor"], names
            )
            verdicts += recovery_verdicts(measured["recovery"])
        # How far behind the (lower-priority) workers and the emulator fell: the
        # seconds until every event of the run had been published and consumed.
        lag = None if platform is None else round(platform.drain(), 1)
    limits = {} if targets else {**RUN_LIMITS, **SIZING}
    text = text_report(measured, verdicts, names, limits)
    meta = {
        "users": users, "readers": readers, "books": books, "think_ms": think_ms,
        "groups": {g.name: {"service": g.service, "users": g.users} for g in groups},
        "limits": limits, "started": started, "emulator": None if targets else emulator,
        "drained_after_seconds": lag,
    }  # fmt: skip
    json_path, html_path = write_reports(report_dir, text, measured, verdicts, meta)
    print()
    print(text)
    if lag is not None:
        print(f"after the last phase the workers' queues drained in {lag:.0f} s")
    print(f"\nreports: {json_path} {html_path}")
    return 0 if all(v.met for v in verdicts) else 1
