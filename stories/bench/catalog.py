"""The content service serving the seeded catalog, measured cached and uncached, and
with tracing off and at each sampling ratio beside a stand-in OTLP collector (the
spans really leave the process, as they would for the ADOT sidecar)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from stories.bench.harness import (
    interleaved_rounds,
    median_round,
    run_wrk,
    uvicorn_process,
)
from stories.bench.services import service_env


@dataclass
class OtlpSink:
    """A stand-in collector: takes OTLP/HTTP exports and counts them (the spans
    really leave the server, as they would for the ADOT sidecar)."""

    url: str
    requests: int = 0
    bytes: int = 0


@contextlib.contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sink = OtlpSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", 0))
            self.rfile.read(size)
            sink.requests += 1
            sink.bytes += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()


CATALOG_PATH = "/v1/books?language=sw&limit=20"


# Tracing off, then on at these (ratio, cap on new traces a second): none sampled,
# 1 in 20 uncapped, 1 in 20 at most 10 a second (infra's defaults), every request.
TRACING_RATIOS: tuple[tuple[float, float | None], ...] = (
    (0.0, None), (0.05, None), (0.05, 10.0), (1.0, None),
)  # fmt: skip
# The tracing rows differ by a few per cent: more rounds, taken in turns.
TRACING_ROUNDS = 5


@contextlib.contextmanager
def catalog_server(
    schema: str,
    cache_seconds: float,
    *,
    tracing: tuple[str, tuple[float, float | None]] | None = None,
) -> Iterator[str]:
    """Content serving the seeded catalog: checked, warmed, ready to measure."""
    env = service_env("CONTENT", schema)
    env["CONTENT_CATALOG_CACHE_SECONDS"] = str(cache_seconds)
    if tracing is not None:
        endpoint, (ratio, cap) = tracing
        env |= {
            "TRACING_EXPORTER": "otlp",
            "TRACING_SAMPLE_RATIO": str(ratio),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        }
        if cap is not None:
            env["TRACING_MAX_TRACES_PER_SECOND"] = str(cap)
    with uvicorn_process(
        "services.content.main:SERVICE.create_app", env, ready_path="/healthz"
    ) as url:
        page = httpx.get(f"{url}{CATALOG_PATH}", timeout=10)
        page.raise_for_status()
        assert len(page.json()["items"]) == 20, page.text
        run_wrk(f"{url}{CATALOG_PATH}", seconds=3, connections=32)  # warm up
        yield url


def measure_catalog(
    schema: str, duration: float, connections: int, cache_seconds: float
) -> tuple[float, str, float, float]:
    with catalog_server(schema, cache_seconds) as url:
        rps, p50, p99 = median_round(
            f"{url}{CATALOG_PATH}", seconds=duration, connections=connections
        )
    return rps, "req/s", p50, p99


def measure_tracing(
    schema: str,
    duration: float,
    connections: int,
    ratios: tuple[tuple[float, float | None], ...],
) -> list[tuple[float, str, float, float]]:
    """The cached catalog with tracing off (twice) and at each ratio, all serving
    at once and measured in turns, spans leaving for a stand-in collector."""
    with otlp_sink() as sink, contextlib.ExitStack() as servers:
        # Two untraced servers: the second is the control, what two identical
        # processes differ by in this run, against which the tracing rows are read.
        urls = [servers.enter_context(catalog_server(schema, 60.0)) for _ in range(2)] + [
            servers.enter_context(catalog_server(schema, 60.0, tracing=(sink.url, ratio)))
            for ratio in ratios
        ]
        measured = interleaved_rounds(
            [f"{url}{CATALOG_PATH}" for url in urls],
            seconds=duration, connections=connections, rounds=TRACING_ROUNDS,
        )  # fmt: skip
    print(f"  the OTLP sink received {sink.requests:,} exports, {sink.bytes:,} bytes of spans")
    return [(rps, "req/s", p50, p99) for rps, p50, p99 in measured]
