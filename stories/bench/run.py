"""Runs the named benchmarks and prints their table."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict

from stories.bench.access import bench_access
from stories.bench.analysis import bench_analysis
from stories.bench.content import bench_content
from stories.bench.delivery import bench_delivery
from stories.bench.events import bench_events
from stories.bench.harness import Figure, format_table
from stories.bench.metrics import bench_metrics
from stories.bench.plumbing import bench_plumbing
from stories.bench.reading_levels import bench_reading_levels
from stories.bench.recommendations import bench_recommendations
from stories.bench.redis_pause import bench_redis_pause
from stories.bench.submit import bench_submit


def run_benchmarks(
    names: list[str], *, duration: float, connections: int, events: int, emulator: str = "moto"
) -> int:

    benchmarks: dict[str, Callable[[], list[Figure]]] = {
        "plumbing": lambda: bench_plumbing(duration=duration, connections=connections),
        "access": lambda: asyncio.run(bench_access(duration=duration, connections=connections)),
        "content": lambda: asyncio.run(bench_content(duration=duration, connections=connections)),
        "delivery": lambda: asyncio.run(bench_delivery(duration=duration, connections=connections)),
        "events": lambda: asyncio.run(bench_events(events=events)),
        "metrics": lambda: asyncio.run(bench_metrics(events=events, emulator=emulator)),
        "redis-pause": lambda: bench_redis_pause(pause_seconds=max(duration, 15.0)),
        "analysis": bench_analysis,
        "reading-levels": bench_reading_levels,
        "recommendations": bench_recommendations,
        "submit": lambda: bench_submit(duration=duration),
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
