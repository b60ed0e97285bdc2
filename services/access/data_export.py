"""A person's data export (#41, README "Privacy"): asked for by the person, an ADMIN,
or the teacher of a class account; gathered by every service from its own
database (shared/bus/exports.py); assembled here into one archive, offered by
a link that expires.

- `ExportService.request`: one export at a time per person (a second while one is
  gathering: 409), in the audit log, announced as `user.export_requested`.
- `write_access_part`: access's own part, when it hears that event as the others do.
- `assemble_exports` (the worker): once the four parts are in the exports bucket,
  one zip (each part's JSON, each table as CSV, a README) replaces them. Ready
  archives go after `ACCESS_EXPORT_DAYS`; an erased person's export is cancelled,
  and anything of it, a part written late included, is removed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.accounts import AccountService
from services.access.models import (
    AuditEntry,
    ClassMember,
    DataExport,
    Entitlement,
    ParentalConsent,
    ReadingHistory,
    RefreshToken,
    SchoolClass,
    User,
)
from services.access.settings import AccessSettings
from shared.bus.consumer import EventContext
from shared.bus.exports import EXPORT_PARTS, as_rows, part_key, write_part
from shared.bus.outbox import record_event
from shared.clients.db import unit_of_work
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, Forbidden, NotFound
from shared.contracts.events import UserExportRequested
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

ARCHIVE_README = """What 1001 Stories holds about you, as of {at}.

Each service's part is here as JSON (<service>.json) and each of its tables as CSV
(<service>/<table>.csv): access (your account, classes, entitlements, consent,
sessions and the audit entries about you), content (what you wrote and reviewed,
and the books that credit you), delivery (your reading progress and the reading
your devices sent) and metrics (the rows of the figures that count you).
Ids are the platform's; times are UTC.
"""


async def write_access_part(context: EventContext, event: UserExportRequested) -> None:
    session, user_id = context.session, event.user_id
    user = await session.get(User, user_id)

    async def rows(query: Any, **kw: Any) -> list[dict[str, Any]]:
        return as_rows(await session.scalars(query), **kw)

    tables = {
        "account": as_rows([user] if user else [], leave_out=("password_hash",)),
        "parental_consent": await rows(
            select(ParentalConsent).where(ParentalConsent.user_id == user_id)
        ),
        "class_memberships": [
            {"class_id": str(c.id), "class_name": c.name, "joined_at": m.joined_at.isoformat()}
            for m, c in (
                await session.execute(
                    select(ClassMember, SchoolClass)
                    .join(SchoolClass, SchoolClass.id == ClassMember.class_id)
                    .where(ClassMember.user_id == user_id)
                )
            ).all()
        ],
        "classes_taught": await rows(select(SchoolClass).where(SchoolClass.teacher_id == user_id)),
        "entitlements": await rows(select(Entitlement).where(Entitlement.user_id == user_id)),
        "sessions": await rows(
            select(RefreshToken).where(RefreshToken.user_id == user_id),
            leave_out=("secret_hash",),
        ),
        "audit_entries": await rows(
            select(AuditEntry)
            .where(or_(AuditEntry.subject_id == user_id, AuditEntry.actor_id == user_id))
            .order_by(AuditEntry.at, AuditEntry.id)
        ),
        "exports": await rows(select(DataExport).where(DataExport.user_id == user_id)),
        # What they read, kept for their next books (#42).
        "reading_history": await rows(
            select(ReadingHistory).where(ReadingHistory.user_id == user_id)
        ),
    }
    await write_part(context.resources, "access", event.export_id, user_id, tables)


@dataclass
class ExportService:
    accounts: AccountService

    async def _subject(self, actor: Principal, user_id: uuid.UUID | None) -> tuple[User, User]:
        """(who asks, whose data): oneself; an ADMIN anyone; a teacher a class
        account of their classes (others: 404, as if it did not exist)."""
        caller = await self.accounts.current_user(actor)
        if user_id is None or user_id == caller.id:
            return caller, caller
        subject = await self.accounts.repository.user(user_id)
        if subject is not None and Role(caller.role).at_least(Role.ADMIN):
            return caller, subject
        if subject is not None and subject.home_class_id is not None:
            home = await self.accounts.repository.school_class(subject.home_class_id)
            if home is not None and home.teacher_id == caller.id:
                return caller, subject
        if not Role(caller.role).at_least(Role.TEACHER):
            raise Forbidden("A learner or volunteer exports their own account only.")
        raise NotFound("No account of yours, or of your classes, has this id.")

    async def request(self, actor: Principal, user_id: uuid.UUID | None) -> DataExport:
        caller, subject = await self._subject(actor, user_id)
        # Locked: two requests at once see each other, and only one export starts.
        await self.accounts.repository.user(subject.id, for_update=True)
        running = await self.accounts.session.scalar(
            select(DataExport).where(
                DataExport.user_id == subject.id, DataExport.status == "gathering"
            )
        )
        if running is not None:
            raise Conflict(
                "An export of this account is being gathered; its status is at the same "
                "address (GET).",
                code="export-in-progress",
                export_id=str(running.id),
            )
        export = DataExport(
            id=uuid.uuid4(), user_id=subject.id, requested_by=caller.id,
            status="gathering", requested_at=now_utc(),
        )  # fmt: skip
        self.accounts.repository.add(export)
        self.accounts.audit(
            caller.id, "user.export_requested", "user", subject.id, None, {"export_id": export.id}
        )
        record_event(
            self.accounts.session, UserExportRequested(export_id=export.id, user_id=subject.id)
        )
        return export

    async def latest(self, actor: Principal, user_id: uuid.UUID | None) -> DataExport:
        _, subject = await self._subject(actor, user_id)
        export = await self.accounts.session.scalar(
            select(DataExport)
            .where(DataExport.user_id == subject.id, DataExport.status != "cancelled")
            .order_by(DataExport.requested_at.desc())
            .limit(1)
        )
        if export is None:
            raise NotFound("No export of this account has been asked for.")
        return export


async def download_link(resources: Resources, settings: AccessSettings, export: DataExport) -> str:
    assert export.archive_key is not None
    url: str = await resources.aws.s3_public.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.resource_names.bucket("exports"),
            "Key": export.archive_key,
            "ResponseContentDisposition": f'attachment; filename="stories-export-{export.id}.zip"',
        },
        ExpiresIn=settings.export_link_seconds,
    )
    return url


async def parts_written(resources: Resources, export_id: uuid.UUID) -> list[str]:
    settings = resources.settings
    listed = await resources.aws.s3.list_objects_v2(
        Bucket=settings.resource_names.bucket("exports"), Prefix=f"{export_id}/"
    )
    names = {obj["Key"] for obj in listed.get("Contents", [])}
    return [s for s in EXPORT_PARTS if part_key(export_id, s) in names]


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    return out.getvalue()


def archive(parts: dict[str, dict[str, Any]], at: datetime) -> bytes:
    """The zip a person downloads: each part as JSON, each table as CSV, a README."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("README.txt", ARCHIVE_README.format(at=at.isoformat()))
        for service, part in parts.items():
            zipped.writestr(f"{service}.json", json.dumps(part, indent=2, ensure_ascii=False))
            for table, rows in part["tables"].items():
                zipped.writestr(f"{service}/{table}.csv", _csv(rows))
    return buffer.getvalue()


class ExportAssembler:
    def __init__(self, resources: Resources, settings: AccessSettings) -> None:
        self._resources, self._settings = resources, settings
        self._s3 = resources.aws.s3
        self._bucket = settings.resource_names.bucket("exports")
        self._sweep_every = timedelta(seconds=settings.export_check_seconds * 30)

    async def _remove_all(self, export_id: uuid.UUID) -> int:
        listed = await self._s3.list_objects_v2(Bucket=self._bucket, Prefix=f"{export_id}/")
        keys = [{"Key": obj["Key"]} for obj in listed.get("Contents", [])]
        if keys:
            await self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys})
        return len(keys)

    async def _assemble(self, session: AsyncSession, export: DataExport, now: datetime) -> bool:
        if await parts_written(self._resources, export.id) != list(EXPORT_PARTS):
            return False
        parts = {}
        for service in EXPORT_PARTS:
            found = await self._s3.get_object(Bucket=self._bucket, Key=part_key(export.id, service))
            async with found["Body"] as body:
                parts[service] = json.loads(await body.read())
        key = f"{export.id}/archive.zip"
        await self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=archive(parts, now), ContentType="application/zip"
        )
        await self._s3.delete_objects(
            Bucket=self._bucket,
            Delete={"Objects": [{"Key": part_key(export.id, s)} for s in EXPORT_PARTS]},
        )
        export.status, export.archive_key, export.ready_at = "ready", key, now
        export.expires_at = now + timedelta(days=self._settings.export_days)
        session.add(
            AuditEntry(
                id=uuid.uuid4(), actor_id=None, action="user.export_ready", subject_type="user",
                subject_id=export.user_id, before=None, after={"export_id": str(export.id)},
                at=now,
            )
        )  # fmt: skip
        return True

    async def step(self) -> dict[str, int]:
        """One pass: assemble what is complete, expire what is old, sweep what is cancelled."""
        now, done = now_utc(), {"assembled": 0, "expired": 0, "swept": 0}
        keep = timedelta(days=self._settings.export_days)
        async with unit_of_work(self._resources.session_factory) as session:
            for export in await session.scalars(
                select(DataExport)
                .where(DataExport.status.in_(["gathering", "ready", "cancelled"]))
                .order_by(DataExport.requested_at)
                .limit(100)
                .with_for_update(skip_locked=True)
            ):
                if export.status == "gathering":
                    done["assembled"] += await self._assemble(session, export, now)
                elif export.status == "ready" and export.expires_at and export.expires_at <= now:
                    await self._remove_all(export.id)
                    export.status, export.archive_key = "expired", None
                    done["expired"] += 1
                elif export.status == "cancelled" and (
                    export.ready_at is None or export.ready_at <= now - self._sweep_every
                ):
                    # Swept again now and then: a service may write its part late.
                    done["swept"] += await self._remove_all(export.id)
                    export.ready_at = now  # when it was last swept
                    if export.requested_at <= now - keep:
                        await session.delete(export)
        return done


async def assemble_exports(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: every `ACCESS_EXPORT_CHECK_SECONDS`, one pass, said when it
    did anything."""
    assert isinstance(settings, AccessSettings)
    assembler = ExportAssembler(resources, settings)

    async def step() -> bool:
        done = await assembler.step()
        if any(done.values()):
            log.info("data exports", **done)
        return False

    await every(settings.export_check_seconds, stop, step, failure="exports not assembled yet")
