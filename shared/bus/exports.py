"""A person's data export (#41, GDPR's rights of access and portability), as every
service takes part in it: on `user.export_requested`, each service gathers the
rows of its own database that are about the person (it never reads another's)
and writes them to the exports bucket as `<export id>/<service>.json`; access's
worker assembles the archive once all four are there (services/access/data_export.py).

A part is JSON: `{"service", "user_id", "written_at", "tables": {name: [row, ...]}}`,
each row a flat object of JSON values (ids and times as strings), so access can
give every table as CSV as well without knowing what it holds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from shared.contracts.clock import now_utc
from shared.resources import Resources

EXPORT_PARTS = ("access", "content", "delivery", "metrics")

Tables = dict[str, list[dict[str, Any]]]


def part_key(export_id: uuid.UUID, service: str) -> str:
    return f"{export_id}/{service}.json"


def _value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def as_rows(objects: Iterable[Any], *, leave_out: Sequence[str] = ()) -> list[dict[str, Any]]:
    """ORM rows as flat JSON objects, every column but `leave_out` (secrets, say)."""
    rows = []
    for obj in objects:
        columns = obj.__table__.columns
        rows.append({c.key: _value(getattr(obj, c.key)) for c in columns if c.key not in leave_out})
    return rows


async def rows_of(session: Any, table: Any, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every row of `table` whose `user_id` is this person's."""
    return as_rows(await session.scalars(select(table).where(table.user_id == user_id)))


async def write_part(
    resources: Resources, service: str, export_id: uuid.UUID, user_id: uuid.UUID, tables: Tables
) -> None:
    """This service's part of the export; written again (the same) if the event is."""
    body = {
        "service": service,
        "user_id": str(user_id),
        "written_at": now_utc().isoformat(),
        "tables": tables,
    }
    await resources.aws.s3.put_object(
        Bucket=resources.settings.resource_names.bucket("exports"),
        Key=part_key(export_id, service),
        Body=json.dumps(body, default=str, ensure_ascii=False).encode(),
        ContentType="application/json",
    )
