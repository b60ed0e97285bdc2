"""The two apps of the plumbing benchmark: one bare endpoint, with and without our factory.

Both are uvicorn factories (`--factory`), so nothing is built at import.
"""

from __future__ import annotations

import os
import tempfile
from typing import ClassVar

from fastapi import APIRouter, FastAPI
from pydantic_settings import SettingsConfigDict

from shared.service.app import create_service_app
from shared.settings import ServiceSettings


class BenchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_")
    service_name: ClassVar[str] = "bench"


def _bare_router() -> APIRouter:
    router = APIRouter()

    @router.get("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return router


def plain_app() -> FastAPI:
    """FastAPI with nothing added: the baseline."""
    app = FastAPI()
    app.include_router(_bare_router())
    return app


def platform_app() -> FastAPI:
    """The same endpoint through our app factory: middleware, error handlers, lifespan clients."""
    data_dir = os.environ.get("BENCH_DATA_DIR") or tempfile.mkdtemp(prefix="stories-bench-")
    settings = BenchSettings(
        database_url=f"sqlite+aiosqlite:///{data_dir}/bench.sqlite3",
        redis_url="memory://bench",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - never sent anywhere
    )
    return create_service_app(
        settings, title="bench", description="bench", routers=[_bare_router()], produces=None
    )
