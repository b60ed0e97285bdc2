"""The harness every benchmark shares: the figure, wrk and its parsing, uvicorn
servers on pinned CPUs, rounds measured in turns, the table."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from stories.emulator import free_port

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
    # For rows at a fixed offered rate, where throughput cannot differ: the most
    # this row's p99 may be, as a multiple of its baseline's.
    target_p99_ratio: float | None = None


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
        # One hash seed for every server: with a random one, two identical
        # processes differed by up to 14 % here (by 5 % with it fixed), more than
        # some rows' differences.
        env={"PYTHONHASHSEED": "0", **os.environ, **(env or {})},
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


def rps_figure(measured: tuple[float, float, float]) -> tuple[float, str, float, float]:
    rps, p50, p99 = measured
    return rps, "req/s", p50, p99


def format_table(figures: list[Figure]) -> str:
    by_row = {(f.benchmark, f.row): f for f in figures}
    width = max([44, *(len(f.row) for f in figures)])
    header = (
        f"{'benchmark':<10} {'row':<{width}} {'throughput':>16} {'p50':>10} {'p99':>10}"
        "  vs baseline"
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
            if f.p99_ms is not None and baseline.p99_ms and f.target_p99_ratio is not None:
                slower = f.p99_ms / baseline.p99_ms
                verdict = "meets" if slower <= f.target_p99_ratio else "MISSES"
                versus += f", p99 {slower:.2f}x ({verdict} <= {f.target_p99_ratio:.2f})"
        if f.target_p99_ms is not None and f.p99_ms is not None:
            verdict = "meets" if f.p99_ms <= f.target_p99_ms else "MISSES"
            versus += f" [p99 {verdict} {f.target_p99_ms:.0f} ms]"
        throughput = f"{f.throughput:>10,.0f} {f.unit:<5}"
        row = f"{f.benchmark:<10} {f.row:<{width}} {throughput} {p50:>10} {p99:>10}"
        lines.append(f"{row}  {versus}")
    return "\n".join(lines)
