"""Driving the load: one wrk process per kind of request (each connection a user),
run in consecutive slices so every few seconds has its own figures, and a
small Python driver beside them for what wrk cannot do (sign-in, refresh-token
rotation, staff at work).

A slice's figures come back from load.lua as one JSON line per wrk process:
counts, socket errors, statuses and the latency histogram, which merge exactly
across slices into the cold and steady figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stories.loadtest.seed import READER_PASSWORD, Library

LUA_SCRIPT = Path(__file__).with_name("load.lua")
# A reader's patience: a request unanswered after this long counts as a timeout.
CLIENT_TIMEOUT_SECONDS = 5


# method, path, headers, body
Request = tuple[str, str, dict[str, str], str]


@dataclass(frozen=True)
class Group:
    """One kind of request, sent by `users` connections to one service."""

    name: str
    service: str
    users: int
    requests: list[Request]


@dataclass
class Sample:
    """What one group did in one slice (or several, merged)."""

    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: Counter[str] = field(default_factory=Counter)
    latency_us: Counter[int] = field(default_factory=Counter)

    def merge(self, other: Sample) -> None:
        self.requests += other.requests
        self.seconds = max(self.seconds, 0.0) + other.seconds
        self.statuses.update(other.statuses)
        self.socket_errors.update(other.socket_errors)
        self.latency_us.update(other.latency_us)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float:
        total = sum(self.latency_us.values())
        if not total:
            return 0.0
        wanted = total * p / 100
        seen = 0
        for value, count in sorted(self.latency_us.items()):
            seen += count
            if seen >= wanted:
                return value / 1000
        return max(self.latency_us) / 1000

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    @property
    def refused(self) -> dict[int, int]:
        """Answers that were not 2xx/3xx, by status."""
        return {code: n for code, n in sorted(self.statuses.items()) if code >= 400}


def reader_groups(library: Library, users: int) -> list[Group]:
    """The readers' mix: browsing the catalog most, then links, their profile and progress."""
    rng = random.Random(11)
    languages = sorted({b.language for b in library.books})
    categories = sorted({b.category for b in library.books})
    catalog: list[Request] = [
        *(("GET", f"/v1/books?language={lang}&limit=20", {}, "") for lang in languages),
        *(("GET", f"/v1/books?category={c}&limit=20", {}, "") for c in categories),
        *(("GET", f"/v1/books?q={word}&limit=20", {}, "") for word in ("moon", "story", "science")),
        ("GET", "/v1/books?limit=20", {}, ""),
    ]
    book_pages: list[Request] = [("GET", f"/v1/books/{b.id}", {}, "") for b in library.books]
    json_headers = {"Content-Type": "application/json"}
    me: list[Request] = []
    links: list[Request] = []
    progress: list[Request] = []
    reading: list[Request] = []
    next_books: list[Request] = []
    for reader, shelf in zip(library.readers, library.shelves, strict=True):
        auth = {"Authorization": f"Bearer {reader.access_token}"}
        me.append(("GET", "/v1/users/me", auth, ""))
        reading.append(("GET", "/v1/reading/me?limit=20", auth, ""))
        next_books.append(("GET", "/v1/users/me/recommendations?limit=10", auth, ""))
        for book_id in shelf:
            links.append(("POST", "/v1/deliveries", {**auth, **json_headers},
                          json.dumps({"book_id": book_id})))  # fmt: skip
            page = rng.randint(1, 24)
            progress.append(("PUT", f"/v1/reading/{book_id}/progress", {**auth, **json_headers},
                             json.dumps({"page": page, "total_pages": 24})))  # fmt: skip
    for requests in (me, links, progress, reading, next_books):
        rng.shuffle(requests)
    # #42: a learner asks for their next books after finishing one, about one
    # request in fifty (taken from the catalog's share).
    shares = {"catalog": 0.28, "book page": 0.10, "users/me": 0.15, "links": 0.25,
              "progress": 0.15, "reading list": 0.05, "next books": 0.02}  # fmt: skip
    kinds = {
        "catalog": ("content", catalog),
        "book page": ("content", book_pages),
        "users/me": ("access", me),
        "links": ("delivery", links),
        "progress": ("delivery", progress),
        "reading list": ("delivery", reading),
        "next books": ("access", next_books),
    }
    counts = {name: max(1, round(users * share)) for name, share in shares.items()}
    counts["catalog"] += users - sum(counts.values())
    return [
        Group(name, service, counts[name], requests) for name, (service, requests) in kinds.items()
    ]


def floor_groups(groups: list[Group]) -> list[Group]:
    """The same users against bare FastAPI apps: what this machine can do at all."""
    return [Group(g.name, g.service, g.users, [("GET", "/bare", {}, "")]) for g in groups]


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def write_lua_data(group: Group, think_ms: int, directory: Path) -> Path:
    path = directory / f"{group.name.replace(' ', '-').replace('/', '-')}.lua"
    with path.open("w") as out:
        out.write(f"think_ms = {think_ms}\nrequests = {{\n")
        for method, target, headers, body in group.requests:
            header_table = ", ".join(
                f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
            )
            out.write(
                f"  {{{_lua_string(method)}, {_lua_string(target)}, {{{header_table}}}, "
                f"{_lua_string(body) if body else 'nil'}}},\n"
            )
        out.write("}\n")
    return path


def wrk_binary() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (`make loadtest` does)")
    return wrk


def run_slice(
    groups: list[Group], urls: dict[str, str], data: dict[str, Path], seconds: int
) -> dict[str, Sample]:
    """Every group's wrk at once for `seconds`; their figures by group."""
    processes = {}
    for group in groups:
        processes[group.name] = subprocess.Popen(
            [
                wrk_binary(), "-t1", f"-c{group.users}", f"-d{seconds}s",
                f"--timeout={CLIENT_TIMEOUT_SECONDS}s", "-s", str(LUA_SCRIPT),
                urls[group.service],
            ],
            env={**os.environ, "LOADTEST_DATA": str(data[group.name])},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
    samples = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=seconds + 60)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("LOADTEST ")), None)
        if line is None:
            raise RuntimeError(f"wrk for {name} printed no figures:\n{stdout}\n{stderr}")
        figures = json.loads(line.removeprefix("LOADTEST "))
        samples[name] = Sample(
            requests=figures["requests"],
            seconds=figures["duration_us"] / 1e6,
            statuses=Counter({int(k): v for k, v in figures["statuses"].items()}),
            socket_errors=Counter({k: v for k, v in figures["errors"].items() if v}),
            latency_us=Counter(dict(figures["latency_us"])),
        )
    return samples


class SessionDriver:
    """Readers signing in and rotating refresh tokens, and staff at work, at a
    steady trickle in its own thread; each request timed by its kind.

    wrk sends fixed requests; these need the previous answer (a rotated refresh
    token) or a password hash per request, which is why they are few.
    """

    def __init__(self, urls: dict[str, str], library: Library, *, per_second: float) -> None:
        self.urls = urls
        self.library = library
        self.per_second = per_second
        self.records: list[tuple[float, str, float, int]] = []  # (at, kind, seconds, status)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Each pool reader's current refresh token (rotation spends the old one).
        self._refresh = {
            i: library.readers[i].refresh_token for i in range(0, min(200, len(library.readers)), 2)
        }

    def __enter__(self) -> SessionDriver:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    async def _timed(self, kind: str, call: Callable[[], object]) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await call()  # type: ignore[misc]
        except httpx.HTTPError:
            self.records.append((time.time(), kind, time.monotonic() - started, 0))
            return None
        self.records.append((time.time(), kind, time.monotonic() - started, response.status_code))
        return response  # type: ignore[no-any-return]

    async def _run(self) -> None:
        rng = random.Random(5)
        access, content, metrics = self.urls["access"], self.urls["content"], self.urls["metrics"]
        staff = self.library.staff
        timeout = httpx.Timeout(CLIENT_TIMEOUT_SECONDS)
        async with httpx.AsyncClient(timeout=timeout) as http:
            tick = 0
            tasks: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                tick += 1

                async def sign_in() -> None:
                    reader = rng.choice(self.library.readers)
                    await self._timed("sign-in", lambda: http.post(
                        f"{access}/v1/auth/login",
                        json={"email": reader.email, "password": READER_PASSWORD},
                    ))  # fmt: skip

                async def refresh() -> None:
                    index = rng.choice(list(self._refresh))
                    token = self._refresh.pop(index, None)
                    if token is None:
                        return  # a rotation of this reader is already in flight
                    response = await self._timed("refresh", lambda: http.post(
                        f"{access}/v1/auth/refresh", json={"refresh_token": token}
                    ))  # fmt: skip
                    if response is not None and response.status_code == 200:
                        self._refresh[index] = response.json()["refresh_token"]

                async def staff_at_work() -> None:
                    await self._timed("staff: new submission", lambda: http.post(
                        f"{content}/v1/submissions",
                        json={"title": "A new story", "summary": "Written during the load test.",
                              "language": "en", "age_min": 5, "age_max": 9,
                              "category": "animals", "reading_level": "early"},
                        headers=staff["VOLUNTEER"].headers,
                    ))  # fmt: skip
                    await self._timed("staff: review queue", lambda: http.get(
                        f"{content}/v1/submissions?limit=20", headers=staff["STORY_MANAGER"].headers
                    ))  # fmt: skip
                    await self._timed("staff: metrics overview", lambda: http.get(
                        f"{metrics}/v1/metrics/overview", headers=staff["CONTENT_ADMIN"].headers
                    ))  # fmt: skip

                jobs = [sign_in(), refresh()] + ([staff_at_work()] if tick % 4 == 0 else [])
                for job in jobs:
                    task = asyncio.create_task(job)
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(1 / self.per_second)
            if tasks:
                await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_SECONDS + 1)

    def samples_between(self, start: float, end: float) -> dict[str, Sample]:
        samples: dict[str, Sample] = {}
        for at, kind, seconds, status in self.records:
            if start <= at < end:
                sample = samples.setdefault(kind, Sample(seconds=end - start))
                sample.requests += 1
                if status == 0:
                    sample.socket_errors["connect/read"] += 1
                else:
                    sample.statuses[status] += 1
                sample.latency_us[int(seconds * 1e6)] += 1
        return samples


@dataclass
class Phase:
    """Consecutive slices of one load (platform or floor, peak or saturation)."""

    name: str
    slices: list[tuple[float, dict[str, Sample]]] = field(default_factory=list)  # (t0, samples)
    # Cores each kind of process used on average over the phase.
    cores: dict[str, float] = field(default_factory=dict)

    def merged(self, first: int = 0, last: int | None = None) -> dict[str, Sample]:
        out: dict[str, Sample] = {}
        for _, samples in self.slices[first:last]:
            for name, sample in samples.items():
                out.setdefault(name, Sample()).merge(sample)
        return out


def run_phase(
    name: str,
    groups: list[Group],
    urls: dict[str, str],
    *,
    think_ms: int,
    seconds: int,
    slice_seconds: int,
    driver: SessionDriver | None = None,
    progress: Callable[[str], None] = print,
) -> Phase:
    phase = Phase(name)
    with tempfile.TemporaryDirectory(prefix="stories-loadtest-") as tmp:
        data = {g.name: write_lua_data(g, think_ms, Path(tmp)) for g in groups}
        started = time.time()
        before = cpu_seconds()
        # wrk processes end with each slice, gone before /proc can be read: their
        # CPU comes from this process's waited-for children.
        children_before = _children_cpu()
        for number in range(max(1, seconds // slice_seconds)):
            t0 = time.time()
            samples = run_slice(groups, urls, data, slice_seconds)
            if driver is not None:
                samples.update(driver.samples_between(t0, time.time()))
            phase.slices.append((t0 - started, samples))
            total = sum(s.rate for s in samples.values())
            errors = sum(s.server_errors + sum(s.socket_errors.values()) for s in samples.values())
            progress(f"  {name} {number * slice_seconds:>3}s: {total:,.0f} req/s, {errors} errors")
        elapsed = time.time() - started
        used = {k: v - before.get(k, 0.0) for k, v in cpu_seconds().items()}
        used["load generator (wrk)"] = _children_cpu() - children_before
        phase.cores = {
            k: round(v / elapsed, 2) for k, v in sorted(used.items(), key=lambda i: -i[1]) if v > 0
        }
    return phase


# --- where the CPU went -------------------------------------------------------------------

_LABELS = (
    ("moto.server", "emulator (moto)"),
    ("stories.moto_fixes", "emulator (moto)"),
    ("localstack", "emulator (localstack)"),
    ("stories.bench.apps", "floor apps"),
    ("redis-server", "redis"),
    ("postgres", "postgresql"),
    ("wrk", "load generator (wrk)"),
)


def _label(command: str) -> str | None:
    if "stories.cli serve " in command or "stories.cli worker " in command:
        words = command.split()
        at = words.index("stories.cli")
        return f"{words[at + 1]} {words[at + 2]}"  # "serve delivery", "worker metrics"
    if "stories loadtest" in command:
        return "load driver (python)"
    for needle, label in _LABELS:
        if needle in command:
            return label
    return None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each kind of process on this machine (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as raw:
                command = raw.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if not command:  # a kernel thread, or a process that names itself in stat only
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as comm:
                command = comm.read().strip()
        label = _label(command)
        if label is not None:
            used[label] = used.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used
