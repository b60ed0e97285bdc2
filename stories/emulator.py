"""A moto server in its own process: the AWS the tests and benchmarks talk to."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def niced(niceness: int) -> list[str]:
    """A command prefix that lowers a process's CPU priority (none at 0)."""
    nice = shutil.which("nice")
    return [nice, "-n", str(niceness)] if niceness and nice else []


# The running moto servers by URL, so a fault test can stall one (`paused`).
_MOTO_SERVERS: dict[str, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def paused(url: str) -> Iterator[None]:
    """The moto server at `url` stalled (SIGSTOP), as an AWS endpoint that stops
    answering: connections stay open and nothing replies, until the block ends."""
    process = _MOTO_SERVERS[url]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


@contextlib.contextmanager
def moto_server_process(port: int | None = None, *, niceness: int = 0) -> Iterator[str]:
    """Start moto's server on loopback (with `stories.moto_fixes`); yields its URL,
    stops it on exit.

    `niceness` lowers its CPU priority (the load test: AWS's queues do not share
    the platform's CPU in production, so here the emulator yields to it).
    """
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [
            *niced(niceness),
            sys.executable,
            "-m",
            "stories.moto_fixes",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the moto server did not start")
            time.sleep(0.1)
        _MOTO_SERVERS[url] = process
        yield url
    finally:
        _MOTO_SERVERS.pop(url, None)
        process.terminate()
        process.wait(timeout=10)


LOCALSTACK_PYTHON = (
    Path(__file__).resolve().parent.parent / ".tools" / "localstack" / "bin" / "python"
)


@contextlib.contextmanager
def localstack_process(
    port: int | None = None, *, ready_seconds: float = 120, niceness: int = 0
) -> Iterator[str]:
    """Start LocalStack in host mode (no Docker) with SNS, SQS, S3 and CloudWatch, S3
    presigned signatures enforced; yields its URL, stops it on exit.

    Needs `scripts/ensure-localstack` (the pinned 4.13.1 in its own virtualenv).
    """
    if not LOCALSTACK_PYTHON.exists():
        raise RuntimeError("LocalStack is not installed: run scripts/ensure-localstack")
    port = port or free_port()
    data = tempfile.mkdtemp(prefix="stories-localstack-")
    env = {
        **os.environ,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": "s3,sqs,sns,cloudwatch",
        "S3_SKIP_SIGNATURE_VALIDATION": "0",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SQS_ENDPOINT_STRATEGY": "path",
        "FILESYSTEM_ROOT": data,
        "DEBUG": "0",
    }
    log = open(os.path.join(data, "localstack.log"), "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603 - our own virtualenv, fixed arguments
        [*niced(niceness), str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            try:
                health = httpx.get(f"{url}/_localstack/health", timeout=1)
                services = health.json().get("services", {})
                if all(services.get(s) in {"available", "running"} for s in ("s3", "sqs", "sns")):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"LocalStack did not start; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
