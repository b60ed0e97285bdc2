"""plumbing: a bare endpoint through our app factory vs. the same endpoint in a
plain FastAPI app; uvicorn with one worker, `wrk` in a separate process."""

from __future__ import annotations

import tempfile

from stories.bench.harness import ROUNDS, Figure, median_round, rps_figure, run_wrk, uvicorn_process


def measure_bare(*, duration: float, connections: int) -> tuple[float, float, float]:
    """The bare endpoint every service benchmark is compared with, measured in the same run."""
    with uvicorn_process("stories.bench.apps:plain_app") as url:
        run_wrk(f"{url}/bare", seconds=3, connections=connections)
        return median_round(f"{url}/bare", seconds=duration, connections=connections)


def bench_plumbing(*, duration: float, connections: int, rounds: int = ROUNDS) -> list[Figure]:
    apps = {
        "plain FastAPI, bare endpoint": "stories.bench.apps:plain_app",
        "our app factory, same endpoint": "stories.bench.apps:platform_app",
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
        Figure("plumbing", plain, *rps_figure(median[plain])),
        Figure("plumbing", ours, *rps_figure(median[ours]), baseline_of=plain, target_ratio=0.8),
    ]
