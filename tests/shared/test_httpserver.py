"""Every API's HTTP protocol (shared/http/httpserver.py): one write per answer, and
nothing else changed: ordering, keep-alive, pipelining, streaming, large bodies,
HEAD, 204 and closing, over a real socket to a real uvicorn."""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from shared.http.httpserver import MAX_HELD_BYTES, CoalescingTransport
from shared.service.runtime import uvicorn_config
from stories.emulator import free_port

BIG = b"x" * (1024 * 1024)
# The event loop's socket transport (private, and not in the type stubs).
SOCKET_TRANSPORT: Any = vars(selector_events)["_SelectorSocketTransport"]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = BIG if path == "/big" else f"answer to {path}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    if path == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[int]]]:
    """A real uvicorn on the platform's config; the sizes of the writes its socket
    transports made (the writes that reach the kernel)."""
    port = free_port()
    writes: list[int] = []
    real_write = SOCKET_TRANSPORT.write

    def counting_write(self: asyncio.Transport, data: bytes) -> None:
        if self.get_extra_info("sockname")[1] == port:
            writes.append(len(data))
        real_write(self, data)

    SOCKET_TRANSPORT.write = counting_write
    running = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
    task = asyncio.create_task(running.serve())
    try:
        while not running.started:
            await asyncio.sleep(0.01)
        yield port, writes
    finally:
        running.should_exit = True
        await task
        SOCKET_TRANSPORT.write = real_write


def exchange(port: int, raw: bytes, *, until: bytes, timeout: float = 5) -> bytes:
    """Send `raw`, read until the answer holds `until` or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(raw)
        received = b""
        while until not in received:
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        return received


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


async def test_an_answer_leaves_in_one_write(server: tuple[int, list[int]]) -> None:
    port, writes = server
    answer = await asyncio.to_thread(exchange, port, get("/small"), until=b"answer to /small")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nanswer to /small")
    # uvicorn's own protocol writes the head and the body apart: two.
    assert len(writes) == 1, writes
    assert writes[0] == len(answer)


async def test_keep_alive_and_pipelined_requests_keep_their_order(
    server: tuple[int, list[int]],
) -> None:
    port, writes = server
    raw = get("/a") + get("/b") + get("/c")
    answer = await asyncio.to_thread(exchange, port, raw, until=b"answer to /c")
    bodies = [answer.find(f"answer to /{p}".encode()) for p in "abc"]
    assert -1 not in bodies, answer
    assert bodies == sorted(bodies), answer
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert len(writes) <= 3  # one per answer at most (pipelined ones may share one)


async def test_streamed_large_head_empty_and_closing_answers_are_whole(
    server: tuple[int, list[int]],
) -> None:
    port, writes = server
    streamed = await asyncio.to_thread(exchange, port, get("/stream"), until=b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in streamed
    assert b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n" in streamed

    writes.clear()
    big = await asyncio.to_thread(exchange, port, get("/big"), until=BIG)
    assert big.endswith(b"\r\n\r\n" + BIG)
    assert max(writes) >= len(BIG)  # written through, under the transport's flow control

    head = await asyncio.to_thread(exchange, port, get("/small", "HEAD"), until=b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.endswith(b"\r\n\r\n")

    empty = await asyncio.to_thread(exchange, port, get("/empty"), until=b"\r\n\r\n")
    assert empty.startswith(b"HTTP/1.1 204 No Content")

    # The connection closes after this answer: what was held is written first.
    closing = await asyncio.to_thread(exchange, port, get("/close"), until=b"\x00never")
    assert closing.endswith(b"answer to /close")
    assert b"connection: close" in closing


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


async def test_the_transport_holds_small_writes_to_the_end_of_the_turn() -> None:
    inner = _RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head ")
    transport.write(b"body")
    assert inner.written == []
    assert transport.get_write_buffer_size() == 9
    await asyncio.sleep(0)
    assert inner.written == [b"head body"]

    transport.write(b"small ")
    transport.write(b"y" * MAX_HELD_BYTES)  # too much to hold: written at once, in order
    assert inner.written[1:] == [b"small " + b"y" * MAX_HELD_BYTES]

    transport.write(b"last")
    transport.close()  # what is held goes before the close
    assert inner.written[-1] == b"last"
    assert inner.closed
    await asyncio.sleep(0)
    assert len(inner.written) == 3  # the scheduled flush finds nothing more to write
