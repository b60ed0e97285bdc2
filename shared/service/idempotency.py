"""`Idempotency-Key`: a retried request gets the first answer instead of doing the work twice.

The key is claimed in the request's own transaction, so the claim, the work and
the stored answer commit together or not at all; a failed attempt leaves no
claim behind and may be retried. A concurrent request with the same key waits
on the claim's primary key, then replays the answer. Reusing a key for a
different request is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.clients.db import PlatformTables, UtcDateTime
from shared.contracts.clock import now_utc
from shared.contracts.errors import Unprocessable
from shared.http.auth import CurrentPrincipal
from shared.resources import SessionDep

MAX_KEY_LENGTH = 200

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key returns the first answer",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
    ),
]


class IdempotencyRecord(PlatformTables):
    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, principal: str, key: str, request_hash: str) -> StoredResponse | None:
        """Claim `key` for this request; if it was used before, the answer to replay."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise Unprocessable(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        claimed = await self._session.execute(
            insert(IdempotencyRecord)
            .values(
                principal=principal,
                key=key,
                request_hash=request_hash,
                created_at=now_utc(),
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
            .returning(IdempotencyRecord.key)
        )
        if claimed.first() is not None:
            return None
        record = await self._session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
            )
        )
        # The claim conflicted, so a committed row exists (an uncommitted one
        # would still be holding our insert).
        assert record is not None
        assert record.status_code is not None
        if record.request_hash != request_hash:
            raise Unprocessable(
                "This Idempotency-Key was already used for a different request.",
                code="idempotency-key-reused",
            )
        return StoredResponse(record.status_code, record.response_body)

    async def record(self, principal: str, key: str, status_code: int, body: Any) -> None:
        record = await self._session.get(IdempotencyRecord, (principal, key))
        assert record is not None, "record() needs a claim() first"
        record.status_code = status_code
        record.response_body = body


async def run_once(
    session: AsyncSession,
    *,
    principal: str,
    key: str | None,
    request_hash: str,
    status_code: int,
    work: Callable[[], Awaitable[Any]],
) -> tuple[int, Any, bool]:
    """Do `work` once per key: returns (status, JSON-ready body, whether it was a replay)."""
    keys = IdempotencyKeys(session)
    if key is not None:
        stored = await keys.claim(principal, key, request_hash)
        if stored is not None:
            return stored.status_code, stored.body, True
    body = _jsonable(await work())
    if key is not None:
        await keys.record(principal, key, status_code, body)
    return status_code, body, False


async def respond_once(
    session: AsyncSession,
    *,
    principal: str,
    key: str | None,
    method: str,
    path: str,
    body: Any,
    status_code: int,
    work: Callable[[], Awaitable[Any]],
    headers: Callable[[Any], dict[str, str]] | None = None,
) -> JSONResponse:
    """`run_once` for an endpoint: the JSON answer, marked `Idempotent-Replayed` on a replay.

    `headers(payload)` adds headers drawn from the answer (an ETag), the same
    for the first answer and its replays.
    """
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    status, payload, replayed = await run_once(
        session,
        principal=principal,
        key=key,
        request_hash=fingerprint(method, path, body),
        status_code=status_code,
        work=work,
    )
    extra = headers(payload) if headers else {}
    if replayed:
        extra["Idempotent-Replayed"] = "true"
    return JSONResponse(payload, status_code=status, headers=extra or None)


def _jsonable(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_jsonable(item) for item in result]
    return result


@dataclass(frozen=True)
class Once:
    """An endpoint's `Idempotency-Key`, bound to what identifies its request: the
    caller, the method and the path, read from the request itself (not retyped
    by each endpoint, where a wrong path would let one key answer another route)."""

    session: AsyncSession
    principal: str
    key: str | None
    method: str
    path: str

    async def respond(
        self,
        body: Any,
        work: Callable[[], Awaitable[Any]],
        *,
        status_code: int = 200,
        headers: Callable[[Any], dict[str, str]] | None = None,
    ) -> JSONResponse:
        """`respond_once` for this request: `work` done once per key, its answer replayed."""
        return await respond_once(
            self.session,
            principal=self.principal,
            key=self.key,
            method=self.method,
            path=self.path,
            body=body,
            status_code=status_code,
            work=work,
            headers=headers,
        )


async def once(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Once:
    # The session and the principal are the endpoint's own (FastAPI resolves each
    # dependency once per request), so the claim commits with the endpoint's work.
    return Once(session, principal.subject, idempotency_key, request.method, request.url.path)


OnceDep = Annotated[Once, Depends(once)]
