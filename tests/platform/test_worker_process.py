"""`stories worker` as the container runs it: consumes, serves its metrics, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select

from services.metrics.main import SERVICE as METRICS
from services.metrics.models import RecordedEvent
from shared.clients.db import create_engine, drop_schema
from shared.contracts.envelope import Envelope
from shared.contracts.events import SubmissionSubmittedV1
from shared.resources import Resources
from shared.service.migrations import upgrade
from shared.settings import ServiceSettings
from stories.emulator import free_port
from tests.support import eventually, unique_schema


def metrics_environment(settings: ServiceSettings, schema: str) -> dict[str, str]:
    """What a `stories` process of the metrics service needs to run against the tests'
    PostgreSQL schema, Redis and moto."""
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "METRICS_DATABASE_URL": settings.database_url,
        "METRICS_DATABASE_SCHEMA": schema,
        "METRICS_REDIS_URL": settings.redis_url,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "RESOURCE_PREFIX": settings.resource_prefix,
    }


async def test_the_worker_applies_events_reports_metrics_and_drains_on_sigterm(
    resources: Resources, settings: ServiceSettings
) -> None:
    schema = unique_schema("metrics")
    await upgrade(METRICS.migrations, settings.database_url, schema)
    envelope = Envelope.wrap(
        SubmissionSubmittedV1(submission_id=uuid.uuid4(), author_id=uuid.uuid4())
    )
    await resources.aws.sns.publish(
        TopicArn=await resources.events_topic_arn(SubmissionSubmittedV1.producer),
        Message=envelope.model_dump_json(),
        MessageAttributes={"type": {"DataType": "String", "StringValue": envelope.type}},
    )
    metrics_port = free_port()
    env = {**metrics_environment(settings, schema), "CONSUMER_WAIT_SECONDS": "5"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stories.cli",
            "worker",
            "metrics",
            "--metrics-port",
            str(metrics_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    engine = create_engine(settings.database_url, schema=schema)
    try:

        async def logged() -> bool:
            async with engine.connect() as connection:
                found = await connection.scalar(
                    select(RecordedEvent.event_id).where(RecordedEvent.event_id == envelope.id)
                )
            return found is not None

        await eventually(logged, timeout=30, what="the event in the metrics log")

        # Counted once the batch is done (committed, its after-commit work run, deleted).
        def counted() -> bool:
            scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            return 'consumer_messages_total{outcome="applied",queue=' in scraped

        await eventually(counted, timeout=10, what="the applied message counted")

        # SIGTERM in the middle of a 5 s long poll: the worker still stops promptly.
        started = asyncio.get_running_loop().time()
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=30)
        assert process.returncode == 0, output
        assert asyncio.get_running_loop().time() - started < 5
        assert "worker stopped" in output
    finally:
        if process.poll() is None:
            process.kill()
        await engine.dispose()
        await drop_schema(settings.database_url, schema)


async def test_serve_runs_several_api_processes_on_one_port_and_stops_them_together(
    settings: ServiceSettings,
) -> None:
    """`stories serve --processes 2`: two APIs share the port (SO_REUSEPORT); SIGTERM
    stops both; if one dies, the other is stopped too and the exit code says so."""
    schema = unique_schema("metrics")
    await upgrade(METRICS.migrations, settings.database_url, schema)
    port = free_port()
    env = metrics_environment(settings, schema)
    command = [sys.executable, "-m", "stories.cli", "serve", "metrics", "--port", str(port)]

    def children_of(pid: int) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                            found.append(int(entry))
                except OSError:
                    continue
        return found

    def stopped(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, unreaped
        except OSError:
            return True

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        # "sigterm while starting" stops them while still importing, before they have
        # a handler of their own (CI once saw exit 241, a child's -15 passed on).
        for stop in ("sigterm while starting", "sigterm", "a child killed"):
            parent = subprocess.Popen([*command, "--processes", "2"], env=env)
            try:
                await eventually(
                    functools.partial(lambda p: len(children_of(p)) == 2, parent.pid),
                    timeout=30,
                    what="two API processes",
                )
                if stop != "sigterm while starting":
                    await eventually(ready, timeout=60, what="the API on the shared port")
                children = children_of(parent.pid)
                if stop.startswith("sigterm"):
                    parent.send_signal(signal.SIGTERM)
                    assert await asyncio.to_thread(parent.wait, 30) == 0
                else:
                    os.kill(children[0], signal.SIGKILL)
                    assert await asyncio.to_thread(parent.wait, 30) != 0
                for child in children:  # none left behind
                    await eventually(
                        functools.partial(stopped, child),
                        timeout=10,
                        what="the API processes to stop",
                    )
            finally:
                if parent.poll() is None:
                    parent.kill()
    finally:
        await drop_schema(settings.database_url, schema)
