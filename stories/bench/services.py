"""What the service benchmarks share: their environment and the bare baseline."""

from __future__ import annotations

import os

from stories.bench.harness import BENCH_DATABASE_URL

DELIVERY_BOOKS = 2_000
# Database 12: the tests use 14 and 15 and the load test 13, so a benchmark can run
# beside `make test` (as #16 asks) without either flushing the other's keys.
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BARE = "bare endpoint (plain FastAPI)"


# Every account of every run is registered, and signs in, from this one address,
# with counts kept in Redis for the window: the benchmarks measure what a request
# costs, not the per-address limits (a second run within the hour was a 429).
UNLIMITED_ADDRESS = {
    "ACCESS_REGISTRATIONS_PER_IP": "100000000",
    "ACCESS_LOGIN_FAILURES_PER_IP": "100000000",
}


def service_env(prefix: str, schema: str) -> dict[str, str]:
    return {
        **(UNLIMITED_ADDRESS if prefix == "ACCESS" else {}),
        "ENVIRONMENT": "development",
        f"{prefix}_DATABASE_URL": BENCH_DATABASE_URL,
        f"{prefix}_DATABASE_SCHEMA": schema,
        "REDIS_URL": BENCH_REDIS_URL,
        # The hot paths make no AWS call; the clients only need an address.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "LOG_LEVEL": "WARNING",
    }
