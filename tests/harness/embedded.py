"""`stories up` started as a newcomer starts it: one process, every service."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.harness.content import PDF, STORY
from tests.support import wait_until

SERVICE_OFFSETS = {"content": 0, "access": 1, "delivery": 2, "metrics": 3}
ADMIN_EMAIL = "admin@embedded.example"
ADMIN_PASSWORD = "a sturdy passphrase 42 for the platform"
# How long one `stories up` may take to answer on every port. Generous: on a loaded
# machine (CI runs beside other work) imports, migrations and moto take their time;
# alone here it is about 11 s. A test that starts the platform twice needs twice this,
# and its pytest timeout must say so (starts_timeout).
STARTUP_SECONDS = 120


def starts_timeout(starts: int) -> int:
    """A pytest timeout for a test that starts the platform `starts` times."""
    return starts * STARTUP_SECONDS + 60


def free_port_run(length: int) -> int:
    """`length` consecutive free ports, below the kernel's ephemeral range: a port
    picked there is free when checked, but an outgoing connection of the starting
    platform (to moto, Redis, another service) may take it before the service binds
    it (seen: delivery's port, "address already in use")."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    high = low - length if low > 12_000 else 65_000
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, high)
        try:
            for port in range(base, base + length):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


@contextmanager
def running_platform(workdir: Path, env: Mapping[str, str] | None = None) -> Iterator[int]:
    """`stories up` in `workdir` until the block ends; yields content's port (the
    others follow it, SERVICE_OFFSETS; the gateway is the port before it, as 8000 is
    before 8001). Only `env` is added to a clean environment: no database, Redis or
    AWS address leaks in from the test run."""
    base = free_port_run(5) + 1
    clean = {
        k: v
        for k, v in os.environ.items()
        if not (
            k.endswith("_DATABASE_URL") or k in {"REDIS_URL", "AWS_ENDPOINT_URL", "DATABASE_URL"}
        )
    }
    clean["ACCESS_BOOTSTRAP_ADMIN_EMAIL"] = ADMIN_EMAIL
    clean["ACCESS_BOOTSTRAP_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    clean.update(env or {})
    with (workdir / "up.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stories.cli",
                "up",
                "--base-port",
                str(base),
                "--aws-port",
                str(free_port_run(1)),
                "--data-dir",
                str(workdir / "data"),
            ],
            cwd=workdir,
            env=clean,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def all_ready() -> bool:
            try:
                return all(
                    httpx.get(f"http://127.0.0.1:{base + o}/readyz", timeout=2).status_code == 200
                    for o in SERVICE_OFFSETS.values()
                ) and (
                    httpx.get(f"http://127.0.0.1:{base - 1}/openapi.json", timeout=2).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        try:
            try:
                wait_until(all_ready, timeout=STARTUP_SECONDS, what="the embedded platform")
            except TimeoutError as exc:
                log.flush()
                tail = (workdir / "up.log").read_text()[-4000:]
                raise TimeoutError(f"{exc}; stories up said:\n{tail}") from exc
            yield base
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)


async def publish_free_book(
    http: httpx.AsyncClient, content: str, admin: dict[str, str], reviewer: dict[str, str]
) -> str:
    """A free book through the whole workflow: written, uploaded, reviewed, published."""
    created = await http.post(f"{content}/v1/submissions", json=STORY, headers=admin)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    ticket = (await http.post(f"{content}/v1/submissions/{sid}/upload", headers=admin)).json()
    uploaded = await http.post(
        ticket["url"], data=ticket["fields"], files={"file": ("s.pdf", PDF, "application/pdf")}
    )
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    submitted = await http.post(
        f"{content}/v1/submissions/{sid}/submit", headers={**admin, "If-Match": '"1"'}
    )
    assert submitted.status_code == 200, submitted.text
    claimed = await http.post(
        f"{content}/v1/submissions/{sid}/claim",
        headers={**reviewer, "If-Match": submitted.headers["ETag"]},
    )
    assert claimed.status_code == 200, claimed.text
    approved = await http.post(
        f"{content}/v1/submissions/{sid}/review",
        json={"decision": "approve"},
        headers={**reviewer, "If-Match": claimed.headers["ETag"]},
    )
    assert approved.status_code == 200, approved.text
    book = await http.post(
        f"{content}/v1/books", json={"submission_id": sid, "access": "free"}, headers=admin
    )
    assert book.status_code == 201, book.text
    book_id: str = book.json()["id"]
    published = await http.post(f"{content}/v1/books/{book_id}/publish", headers=admin)
    assert published.status_code == 200, published.text
    return book_id
