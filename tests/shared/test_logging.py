"""Logs are JSON lines that carry the request id of the request they were written in."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.http.middleware import current_request_id
from shared.service.logging import configure_logging


def test_log_lines_are_json_with_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    try:
        token = current_request_id.set("req-42")
        try:
            structlog.get_logger("test").info("book published", book_id="b-1")
            logging.getLogger("uvicorn.error").warning("stdlib line")
        finally:
            current_request_id.reset(token)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        configure_logging("WARNING", json=False)
    assert lines[0]["event"] == "book published"
    assert lines[0]["book_id"] == "b-1"
    assert lines[0]["request_id"] == "req-42"
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert lines[1]["event"] == "stdlib line"
    assert lines[1]["request_id"] == "req-42"


def test_console_tracebacks_are_plain_and_show_no_locals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json=False)
    try:

        def fail() -> None:
            secret_password = "hunter2-do-not-print"  # a local that must not leak
            raise RuntimeError(f"boom {len(secret_password)}")

        try:
            fail()
        except RuntimeError:
            structlog.get_logger("test").exception("unhandled error")
        output = capsys.readouterr().err
    finally:
        configure_logging("WARNING", json=False)
    assert "RuntimeError: boom 20" in output
    assert "Traceback (most recent call last)" in output
    assert "hunter2" not in output
    assert len(output.splitlines()) < 40


async def test_the_access_log_is_one_line_per_request_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#16.7: LOG_REQUESTS gives an access log, with the request id and no query."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from shared.http.middleware import CorsPolicy, RequestContextMiddleware
    from shared.observe.telemetry import Telemetry

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    inner = Starlette(routes=[Route("/books/{book_id}", hello)])
    lines: dict[bool, list[dict[str, object]]] = {}
    configure_logging("INFO", json=True)
    try:
        for asked in (False, True):
            app = RequestContextMiddleware(
                inner, Telemetry("t"), CorsPolicy([]), 1024, log_requests=asked
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.get("/books/7?cursor=secret", headers={"X-Request-ID": "r-1"})
            assert answer.status_code == 200
            logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
            lines[asked] = [line for line in logged if line["event"] == "request"]
    finally:
        configure_logging("WARNING", json=False)
    assert lines[False] == []
    (line,) = lines[True]
    assert line["event"] == "request"
    assert line["path"] == "/books/7"
    assert line["status"] == 200
    assert line["request_id"] == "r-1"
