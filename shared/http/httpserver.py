"""The HTTP protocol every API is served with: uvicorn's httptools protocol, with
each answer leaving in one write instead of two.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and the body when it sends `http.response.body`: two
`send` system calls, two TCP segments (the socket has TCP_NODELAY) and two
wake-ups of the client, for an answer of a few hundred bytes. Measured under
the load test's peak, those writes were the largest single cost of the busiest
services (23 % of delivery's samples, 14 % of access's). Here the writes one
connection makes in one turn of the event loop are joined and handed to the
socket once, at the end of that turn: the same bytes, in the same order, in
half the calls.

What must not change, and does not:
- ordering: every write of a connection goes through its one buffer;
- back-pressure: anything large (a streamed body) is written through at once,
  so the socket transport's own flow control (pause_writing) works as before;
- closing: what is held is written before the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Held writes up to this size wait for the end of the loop's turn; anything at
# or above it is written through (a streamed body, a large document).
MAX_HELD_BYTES = 64 * 1024


class CoalescingTransport:
    """A socket transport whose small writes in one loop turn leave as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= MAX_HELD_BYTES:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._held_bytes + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, is_closing, pause_reading, abort, ...)
        # is the socket transport's own.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]
