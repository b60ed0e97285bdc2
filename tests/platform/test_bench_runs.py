"""The event benchmarks run end to end at a small size: a benchmark that only
breaks when someone measures (as the events and metrics benchmarks did when
metrics' outbox was dropped) is found by `make test` instead."""

from __future__ import annotations

import os

from stories.bench.analysis import bench_analysis
from stories.bench.events import bench_events
from stories.bench.metrics import bench_metrics
from stories.bench.submit import CONDITIONS, bench_submit
from stories.redis_process import redis_process

SUBMIT_DATABASE = os.environ.get(
    "BENCH_SUBMIT_TEST_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_bench_submit_test",
)


async def test_the_events_benchmark_carries_every_event_through_the_outbox() -> None:
    figures = await bench_events(events=30, steady_rate=20.0, steady_seconds=1.0)
    rows = {figure.row: figure for figure in figures}
    assert set(rows) == {
        "raw SQS loop, 30 flat out",
        "outbox->SNS->SQS->consumer, 30 flat out",
        "raw SQS loop, 20/s steady",
        "outbox->SNS->SQS->consumer, 20/s steady",
    }
    assert all(figure.throughput > 0 for figure in figures)


async def test_the_metrics_benchmark_sees_every_committed_event_on_the_overview() -> None:
    figures = await bench_metrics(events=30, steady_rate=20.0, seconds=1.0)
    shown = next(f for f in figures if f.row.startswith("commit -> /overview shows it"))
    applied = next(f for f in figures if f.row.startswith("metrics consumer applies them"))
    assert shown.throughput == 20  # every one of the 20 commits, counted on the overview
    assert applied.throughput > 0


def test_the_analysis_benchmark_measures_each_book_beside_the_check_alone() -> None:
    figures = {f.row: f for f in bench_analysis(rounds=1)}
    assert len(figures) == 8
    for book in ("40-page illustrated", "300-page text"):
        alone = figures[f"{book}: check child, no analysis (CPU)"]
        both = figures[f"{book}: check child + analysis (CPU)"]
        assert both.baseline_of == alone.row
        assert alone.p50_ms is not None
        assert both.p50_ms is not None
        assert alone.p50_ms > 0
        assert figures[f"{book}: analysis alone, warm (CPU)"].p50_ms is not None
    assert figures["40-page illustrated: what the analysis adds (CPU)"].target_p99_ms == 1000


def test_the_submit_benchmark_times_real_submits_and_requests_in_every_condition() -> None:
    with redis_process() as redis_server:
        figures = bench_submit(
            duration=1.5, rounds=1, database_url=SUBMIT_DATABASE, redis_url=redis_server.url
        )
    rows = {f.row: f for f in figures}
    kinds = ("submit of a 1-page book", "the API's own requests, 40/s")
    assert set(rows) == {f"{kind}, {name}" for kind in kinds for name in CONDITIONS}
    for kind in kinds:
        assert all(rows[f"{kind}, {name}"].throughput > 0 for name in CONDITIONS)
        judged = rows[f"{kind}, beside 40-page checks + analysis"]
        assert judged.baseline_of == f"{kind}, beside 40-page checks, no analysis (control)"
        assert judged.target_p99_ratio == 1.25
