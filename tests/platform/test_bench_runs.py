"""The event benchmarks run end to end at a small size: a benchmark that only
breaks when someone measures (as the events and metrics benchmarks did when
metrics' outbox was dropped) is found by `make test` instead."""

from __future__ import annotations

from stories.bench.events import bench_events
from stories.bench.metrics import bench_metrics


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
