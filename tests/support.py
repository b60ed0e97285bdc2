"""Helpers the tests share: a TCP proxy that
can be cut to simulate an outage, an HTTP server in a thread, and settings."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import uvicorn
from pydantic_settings import SettingsConfigDict
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.outbox import OutboxMessage
from shared.contracts.envelope import Envelope
from shared.service.runtime import uvicorn_config
from shared.settings import ServiceSettings
from stories.emulator import free_port


async def outbox_events(
    session_factory: async_sessionmaker[AsyncSession], event_type: str
) -> list[Envelope]:
    """The events of one type a service has recorded in its outbox, oldest first."""
    async with session_factory() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == event_type)
            .order_by(OutboxMessage.position)
        )
        return [Envelope.model_validate_json(r.envelope) for r in rows]


async def tables_holding(
    session_factory: async_sessionmaker[AsyncSession], *needles: str
) -> list[str]:
    """Every `table.column` of a service's schema (its connection's search path) where
    any of `needles` appears in a text or JSON value: what a store still holds."""
    found = []
    async with session_factory() as session:
        columns = await session.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() "
                "AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
            )
        )
        for table, column in columns.all():
            for needle in needles:
                # Names from the catalog itself, quoted: not input from anyone.
                query = f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE :needle'  # noqa: S608
                hits = await session.scalar(
                    text(query),
                    {"needle": f"%{needle}%"},
                )
                if hits:
                    found.append(f"{table}.{column}")
    return found


TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/stories_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def wait_until(condition: Callable[[], bool], *, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or condition}")


async def eventually(
    condition: Callable[[], object], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Await until `condition()` (sync or async) is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)


class ToggleableProxy:
    """A TCP proxy on loopback; `cut()` refuses and drops connections, `restore()` heals."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.close()

    def restore(self) -> None:
        self.up = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, upstream_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if not self.up:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


class ThreadedServer:
    """A uvicorn server in a background thread, for a real HTTP peer in tests."""

    def __init__(
        self, app: object, port: int | None = None, *, trusted_proxies: Sequence[str] = ()
    ) -> None:
        self.port = port or free_port()
        # Served as every API is (shared.service.runtime), proxy trust included.
        self.server = uvicorn.Server(
            uvicorn_config(app, "127.0.0.1", self.port, trusted_proxies)  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, what="test HTTP server")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SampleSettings(ServiceSettings):
    """Settings of a service that exists only in tests."""

    model_config = SettingsConfigDict(env_prefix="SAMPLE_")
    service_name: ClassVar[str] = "sample"


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


def unique_schema(name: str) -> str:
    return f"t_{uuid.uuid4().hex[:10]}_{name}"


def _cursor(raw: str) -> str:
    import base64

    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# Cursors a hostile client can build (the format is plain base64 JSON): each must
# be a 422, never a 500 and never work done on the client's behalf.
HOSTILE_CURSORS = {
    "not base64": "bogus!",
    "a time without a zone": _cursor(
        '["2030-01-01T00:00:00","ffffffff-ffff-ffff-ffff-ffffffffffff"]'
    ),
    "a time that overflows in UTC": _cursor(
        '["0001-01-01T00:00:00+14:00","ffffffff-ffff-ffff-ffff-ffffffffffff"]'
    ),
    "a thousand levels deep": _cursor("[" * 1000 + "]" * 1000),
    "not a list": _cursor('{"a":1}'),
    "numbers": _cursor("[1,2]"),
    "long": _cursor('["' + "9" * 5000 + '","x"]'),
}


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 answer as every part of the platform gives it (a handler, a fast
    path, the outermost middleware): its status, its code, the path it is about and
    the request id the response carries."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert body["type"].startswith("https://stories.example/problems/"), body
    assert body["title"], body
    if code is not None:
        assert body["type"].rsplit("/", 1)[-1] == code, body
    assert body["instance"] == response.request.url.path, body
    assert body["request_id"] == response.headers["x-request-id"], body
    return body


async def fast_path_answers(http: Any, method: str, route: str, status: int | None = None) -> int:
    """How many requests the service's fast path answered itself, before routing
    (from its /metrics): what proves the fast path, not the endpoint, answered."""
    text = (await http.get("/metrics")).text
    total = 0
    for line in text.splitlines():
        if not line.startswith("http_fast_path_answers_total{"):
            continue
        labels, value = line[len("http_fast_path_answers_total{") :].rsplit("} ", 1)
        if (
            f'method="{method}"' in labels
            and f'route="{route}"' in labels
            and (status is None or f'status="{status}"' in labels)
        ):
            total += int(float(value))
    return total


def original_lineage(book_id: uuid.UUID, reading_level: str = "early") -> dict[str, Any]:
    """What book.* version 2 says of a book that is an original, its own family."""
    return {
        "family_id": book_id,
        "derived_from": None,
        "derivation": "original",
        "reading_level": reading_level,
        "licence": "CC-BY-4.0",
    }
