"""Structured logs: JSON lines in deployments, readable lines on a terminal.

Standard-library loggers (uvicorn, SQLAlchemy, botocore) go through the same
processors, so every line carries the request id bound for the request.
"""

from __future__ import annotations

import logging
import sys

import structlog

from shared.http.middleware import add_request_id
from shared.observe.tracing import add_trace_ids


def _drop_color_message(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    # uvicorn passes a duplicate, ANSI-coloured copy of each message as an extra.
    event.pop("color_message", None)
    return event


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    # Plain tracebacks on a terminal: the default (Rich, with every local of every
    # frame) renders thousands of lines per error on the event loop, blocking the
    # process for seconds, and locals can hold secrets.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info
            if json
            else structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _drop_color_message,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request lines from uvicorn would double what the metrics already count.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # The in-process moto server logs every AWS call it answers.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    # Libraries that log what passes through them, personal data included, at
    # DEBUG or INFO: SQL with its parameters (an email looked up at sign-in), the
    # mail servers' envelopes (a parent's address), HTTP request lines. Kept to
    # warnings whatever LOG_LEVEL says (#41: no personal data in logs;
    # tests/platform/test_personal_data.py runs at DEBUG to prove it).
    for chatty in (
        "aiosqlite",
        "sqlalchemy.engine",
        "asyncpg",
        "aiosmtplib",
        "mail.log",
        "httpx",
        "httpcore",
        "urllib3",
        "boto3",
        "s3transfer",
    ):
        logging.getLogger(chatty).setLevel(logging.WARNING)
