"""What access keeps, and for how long (#41, README "Privacy"): the worker removes,
every `ACCESS_RETENTION_CHECK_SECONDS`, what is past its time, and says what.

- Sessions: a refresh token issued more than `ACCESS_SESSION_RETENTION_DAYS` (30)
  ago and expired. (One still valid is never removed, whatever the settings: that
  would sign someone out.)
- Audit entries older than `ACCESS_AUDIT_RETENTION_DAYS` (365).

Removed in batches, so no delete holds its locks for long.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.models import AuditEntry, RefreshToken
from services.access.settings import AccessSettings
from shared.clients.db import unit_of_work
from shared.contracts.clock import now_utc
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

BATCH = 5000


async def remove_expired(
    session: AsyncSession, settings: AccessSettings, now: datetime
) -> dict[str, int]:
    """One batch of each kind past its time: how many of each went."""
    sessions = select(RefreshToken.id).where(
        RefreshToken.issued_at < now - timedelta(days=settings.session_retention_days),
        RefreshToken.expires_at < now,
    )
    audit = select(AuditEntry.id).where(
        AuditEntry.at < now - timedelta(days=settings.audit_retention_days)
    )
    removed = {}
    for name, table, old in (
        ("sessions", RefreshToken, sessions),
        ("audit_entries", AuditEntry, audit),
    ):
        ids = list(await session.scalars(old.limit(BATCH)))
        if ids:
            await session.execute(delete(table).where(table.id.in_(ids)))
        removed[name] = len(ids)
    return removed


async def keep_retention(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    assert isinstance(settings, AccessSettings)

    async def step() -> bool:
        async with unit_of_work(resources.session_factory) as session:
            removed = await remove_expired(session, settings, now_utc())
        if any(removed.values()):
            log.info("retention: removed what was past its time", **removed)
        return any(n == BATCH for n in removed.values())

    await every(settings.retention_check_seconds, stop, step, failure="retention not applied yet")
