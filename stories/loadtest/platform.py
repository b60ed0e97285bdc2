"""The production-like run the load test drives: every service as its own API
process and its own worker process, on PostgreSQL, Redis and a moto server,
exactly as `stories serve` / `stories worker` run in a deployment."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stories.emulator import free_port, localstack_process, moto_server_process, niced
from stories.registry import SERVICES

LOADTEST_DATABASE = os.environ.get(
    "LOADTEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_loadtest"
)
LOADTEST_REDIS = os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# The emulator stands in for SNS, SQS and S3, which in production run on AWS's
# machines, not the platform's: here it takes the CPU the platform leaves (it
# still gets all of it while the platform waits), and the report says how long
# its queues took to drain after each phase and how much CPU it used.
EMULATOR_NICENESS = 19
# The workers, too, run on machines of their own in production (a Fargate task
# each, infra/platform), so on this one machine they yield the CPU to the APIs
# while a request waits; they still get every cycle the APIs leave, and the
# report says how far their queues lagged and how long they took to drain. At
# the same priority the metrics worker alone took 0.2 of the 2 cores at the peak;
# at nice 5 (the emulator at 10) a link still waited 33 ms at the median there,
# mostly for the CPU, and 17 ms at 10 (the emulator at 19).
WORKER_NICENESS = 10
ADMIN_EMAIL = "loadtest-root@example.org"
ADMIN_PASSWORD = "Peak-hour-keeper-7"  # noqa: S105 - a throwaway platform's admin


def platform_environment(
    ports: dict[str, int], aws_url: str, database_url: str, redis_url: str
) -> dict[str, str]:
    """The settings of every process: one platform, real backing services.

    Limits meant for people are raised where the load generator is not one:
    every synthetic reader signs in from this one address, and asks for links
    far more often than a person would. What the run changes is printed in the
    report, so a 429 in it can only come from a limit set here.
    """
    access = f"http://127.0.0.1:{ports['access']}"
    return {
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "loadtest",
        "AWS_SECRET_ACCESS_KEY": "loadtest",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RESOURCE_PREFIX": "loadtest-",
        "JWKS_URL": f"{access}/.well-known/jwks.json",
        "ACCESS_URL": access,
        "ACCESS_METRICS_URL": f"http://127.0.0.1:{ports['metrics']}",
        "CONTENT_METRICS_URL": f"http://127.0.0.1:{ports['metrics']}",
        **RUN_LIMITS,
        **SIZING,
    }


# How the run is sized. Measured here: giving delivery two API processes
# (DELIVERY_API_PROCESSES=2) took CPU from access and content on this 2-core
# machine, and the peak fell from keeping up to 0.78x with sign-ins timing out,
# so every service runs one process, as the floor's apps do.
SIZING: dict[str, str] = {}


# The limits this run sets (see platform_environment); everything else is the default.
RUN_LIMITS = {
    "ACCESS_LOGIN_FAILURES_PER_IP": "1000000",
    "ACCESS_REGISTRATIONS_PER_IP": "1000000",
    "DELIVERY_LINKS_PER_MINUTE": "100000",
    # Tokens outlive the run (seeding plus four phases), so none expires mid-run.
    "ACCESS_ACCESS_TOKEN_TTL_SECONDS": "3600",
}


def production_settings() -> dict[str, str]:
    """`ENVIRONMENT=production` with secrets of the run's own (fresh random ones,
    as Secrets Manager would hold): every placeholder refusal and deployed-only
    rule applies, as on Fargate."""
    clients = {name: secrets.token_urlsafe(24) for name in SERVICES if name != "access"}
    return {
        "ENVIRONMENT": "production",
        "ACCESS_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "ACCESS_SERVICE_CLIENT_SECRET": secrets.token_urlsafe(24),
        "ACCESS_SERVICE_CLIENTS": json.dumps(clients),
        **{f"{name.upper()}_SERVICE_CLIENT_SECRET": secret for name, secret in clients.items()},
    }


@dataclass
class Platform:
    """The running processes; `urls` maps each service to its API's address."""

    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Each worker's Prometheus port (a worker has no API to carry its figures).
    worker_metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def _start(self, key: str, *args: str) -> None:
        log = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - owned by the process
        # BENCH_PROFILE=DIR, as for `stories bench`: every process runs under py-spy,
        # its samples (collapsed stacks) written to DIR/<process>-<pid>.txt when it stops.
        profile_dir = os.environ.get("BENCH_PROFILE")
        profiler = []
        if profile_dir:
            output = f"{profile_dir}/{key}-{len(self.processes)}-{time.monotonic_ns()}.txt"
            profiler = [str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "100",
                        "--subprocesses", "--format", "raw", "--output", output, "--"]  # fmt: skip
        priority = niced(WORKER_NICENESS) if key.startswith("worker-") else []
        self.processes[key] = subprocess.Popen(
            [*priority, *profiler, sys.executable, "-m", "stories.cli", *args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=bool(profiler),
        )

    def start_apis(self) -> None:
        for name, port in self.ports.items():
            self._start(f"api-{name}", "serve", name, "--port", str(port))
        self.wait_ready()

    def start_api(self, name: str) -> None:
        self._start(f"api-{name}", "serve", name, "--port", str(self.ports[name]))
        self.wait_ready()

    def stop_api(self, name: str) -> None:
        self._stop(f"api-{name}")

    def run(self, *args: str) -> None:
        """One `stories` command (migrate, metrics rebuild, ...) with the run's settings."""
        _run(self.env, *args)

    def start_workers(self) -> None:
        for name in self.ports:
            self.start_worker(name)

    def start_worker(self, name: str) -> None:
        port = self.worker_metrics_ports.setdefault(name, free_port())
        self._start(f"worker-{name}", "worker", name, "--metrics-port", str(port))

    def wait_worker_ready(self, name: str, timeout: float = 60) -> None:
        """Until the worker serves its figures: started, its signal handlers in place."""
        deadline = time.monotonic() + timeout
        url = self.worker_metrics_urls[name]
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            process = self.processes.get(f"worker-{name}")
            if time.monotonic() > deadline or (process is not None and process.poll() is not None):
                raise RuntimeError(f"worker {name} did not start; see {self.log_dir}")
            time.sleep(0.1)

    def kill_worker(self, name: str) -> None:
        """kill -9: no drain, no goodbye; whatever it held is redelivered."""
        process = self.processes.pop(f"worker-{name}")
        process.kill()
        process.wait(timeout=30)

    def stop_worker(self, name: str) -> int:
        """SIGTERM, as ECS stops a task: the exit code after it drained."""
        process = self.processes.pop(f"worker-{name}")
        process.terminate()
        return process.wait(timeout=60)

    @property
    def worker_metrics_urls(self) -> dict[str, str]:
        return {n: f"http://127.0.0.1:{p}/metrics" for n, p in self.worker_metrics_ports.items()}

    def stop_apis(self) -> None:
        for name in self.ports:
            self._stop(f"api-{name}")

    def restart_apis(self) -> None:
        """A deploy: new API processes, every in-process cache empty."""
        self.stop_apis()
        self.start_apis()

    def _stop(self, key: str) -> None:
        process = self.processes.pop(key, None)
        if process is None:
            return
        if os.environ.get("BENCH_PROFILE"):  # py-spy writes its profile on SIGINT
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for key in list(self.processes):
            self._stop(key)

    def drain(self, within: float = 600) -> float:
        """Wait until every outbox and queue is empty: the events of the last phase
        published and consumed, so the next phase starts on a quiet machine. The
        seconds it took."""
        import boto3  # type: ignore[import-untyped]  # sync client, for a wait loop

        from shared.contracts.names import SUBSCRIPTIONS, ResourceNames

        names = ResourceNames(self.env["RESOURCE_PREFIX"])
        sqs = boto3.client(
            "sqs",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id="loadtest",
            aws_secret_access_key="loadtest",  # noqa: S106 - the emulator takes any
        )
        urls = [sqs.get_queue_url(QueueName=names.queue(c))["QueueUrl"] for c in SUBSCRIPTIONS]
        started = time.monotonic()
        quiet = 0
        while quiet < 2 and time.monotonic() - started < within:
            waiting = _unpublished_events(self.env["DATABASE_URL"])
            for url in urls:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                waiting += sum(int(v) for v in attributes.values())
            quiet = quiet + 1 if waiting == 0 else 0
            time.sleep(1)
        return time.monotonic() - started

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name, url in self.urls.items():
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                died = self.processes.get(f"api-{name}")
                if time.monotonic() > deadline or (died is not None and died.poll() is not None):
                    raise RuntimeError(f"{name} did not become ready; see {self.log_dir}")
                time.sleep(0.2)


def _unpublished_events(database_url: str) -> int:
    """Events committed but not yet published, in every producer's outbox."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    async def count() -> int:
        url = make_url(database_url)
        connection = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, database=url.database
        )
        try:
            total = 0
            for producer in ("access", "content", "delivery"):
                total += await connection.fetchval(
                    f'SELECT count(*) FROM "{producer}".outbox WHERE published_at IS NULL'  # noqa: S608 - fixed names
                )
            return total
        finally:
            await connection.close()

    return asyncio.run(count())


def _run(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stories.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stories {args[0]} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def production_like_platform(
    log_dir: Path,
    emulator: str = "moto",
    *,
    database_url: str = LOADTEST_DATABASE,
    redis_url: str = LOADTEST_REDIS,
    settings: dict[str, str] | None = None,
) -> Iterator[Platform]:
    """Fresh database and Redis, the AWS emulator (moto, or LocalStack where
    `scripts/ensure-localstack` installed it), then migrate, bootstrap, the first
    ADMIN, and every API and worker as a process of its own. `settings` adds to
    or overrides the run's environment (e.g. `production_settings()`)."""
    import asyncio

    from redis import Redis

    from shared.clients.db import drop_schema, ensure_database

    async def fresh_database() -> None:
        await ensure_database(database_url)
        for name in SERVICES:
            await drop_schema(database_url, name)

    asyncio.run(fresh_database())
    Redis.from_url(redis_url).flushdb()
    log_dir.mkdir(parents=True, exist_ok=True)
    emulate = localstack_process if emulator == "localstack" else moto_server_process
    with emulate(niceness=EMULATOR_NICENESS) as aws_url:
        ports = {name: free_port() for name in SERVICES}
        env = {**platform_environment(ports, aws_url, database_url, redis_url), **(settings or {})}
        platform = Platform(env, ports, log_dir)
        _run(platform.env, "migrate")
        _run(platform.env, "bootstrap")
        _run(platform.env, "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        try:
            platform.start_apis()
            platform.start_workers()
            yield platform
        finally:
            platform.stop()
