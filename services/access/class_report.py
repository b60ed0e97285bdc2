"""The class report (#19): who in a class opened, read and finished each assigned
book, by name, as JSON or CSV for a spreadsheet.

Names live here in access and nowhere else; the reading figures live in the
metrics service, by id. Once access has checked the class is the caller's, it
asks metrics for the class's figures with its own service credential (minted
here: no round trip, and no call back into access while it answers, as a
teacher's token would need for metrics to ask access about the teacher) and joins
the names to them. The rows are this service's members and live assignments,
so a learner or assignment that metrics has not heard of yet shows as not
opened, never as missing.

The call to metrics is bounded like every call to another service: a deadline
and a cap in flight; metrics down, slow or busy is a 503 with Retry-After,
never a report of zeros shown as right.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, Field

from services.access.models import ClassAssignment, SchoolClass, User
from services.access.settings import AccessSettings
from services.access.tokens import TokenIssuer
from shared.clients.upstream import BoundedCalls
from shared.contracts.clock import now_utc
from shared.contracts.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


# --- the report's shape (its JSON, and the rows its CSV is written from) ---


class ProgressRow(BaseModel):
    """One learner and one assigned book: a row of the class report (#19)."""

    user_id: uuid.UUID
    username: str | None = Field(description="Class accounts sign in with it")
    display_name: str
    assignment_id: uuid.UUID
    book_id: uuid.UUID
    title: str | None
    due_at: datetime | None
    opened: bool = Field(description="Opened the book, or reported reading it, at least once")
    opens: int = Field(description="Links issued to this learner for this book")
    progress_percent: int = Field(ge=0, le=100, description="The furthest page, in % of the book")
    completed_at: datetime | None
    last_read_at: datetime | None


class NotStarted(BaseModel):
    user_id: uuid.UUID
    display_name: str


class AssignmentProgress(BaseModel):
    assignment_id: uuid.UUID
    book_id: uuid.UUID
    title: str | None
    due_at: datetime | None
    learners: int
    opened: int
    completed: int
    not_started: list[NotStarted] = Field(description="Who has not opened the book yet, by name")


class ClassProgress(BaseModel):
    class_id: uuid.UUID
    name: str
    figures_as_of: datetime | None = Field(
        description="When the metrics service read its figures (they follow reading by "
        "seconds); null if it has none for this class yet, and then nobody has opened anything"
    )
    learners: int
    assignments: list[AssignmentProgress]
    rows: list[ProgressRow] = Field(description="Each learner and each assigned book")


SERVICE_NAME = "access"


class MetricsUnavailable(ServiceUnavailable):
    code = "metrics-unavailable"


# The credential is renewed this long before it expires.
RENEWAL_MARGIN = timedelta(minutes=1)


class ClassFigures:
    """The metrics service's figures of one class (`GET /v1/metrics/classes/{id}`)."""

    def __init__(
        self, settings: AccessSettings, http: httpx.AsyncClient, issuer: TokenIssuer
    ) -> None:
        self._base_url = settings.metrics_url.rstrip("/")
        self._http = http
        self._issuer = issuer
        self._ttl = timedelta(seconds=settings.service_token_ttl_seconds)
        self._token: str | None = None
        self._renew_at = now_utc()
        self.calls = BoundedCalls(
            "metrics",
            deadline_seconds=settings.metrics_timeout_seconds,
            max_in_flight=settings.metrics_max_in_flight,
            unavailable=MetricsUnavailable,
        )

    async def of_class(self, class_id: uuid.UUID) -> dict[str, Any] | None:
        """The figures, or None when metrics knows nothing of the class yet (no
        learner and no assignment announced: nothing to count). The caller has
        checked that the class is theirs."""
        return await self.calls.run(
            lambda: self._get(class_id),
            busy="Reading figures are busy right now; retry shortly.",
            late="Reading figures cannot be read right now.",
        )

    async def _credential(self) -> str:
        if self._token is None or now_utc() >= self._renew_at:
            issued = await self._issuer.issue(
                subject=f"service:{SERVICE_NAME}", role=None, ttl=self._ttl, kind="service"
            )
            self._token, self._renew_at = issued.token, issued.expires_at - RENEWAL_MARGIN
        return self._token

    async def _get(self, class_id: uuid.UUID) -> dict[str, Any] | None:
        try:
            response = await self._http.get(
                f"{self._base_url}/v1/metrics/classes/{class_id}",
                headers={"Authorization": f"Bearer {await self._credential()}"},
            )
        except httpx.HTTPError as exc:
            log.warning("metrics service unreachable", error=repr(exc))
            raise MetricsUnavailable("Reading figures cannot be read right now.") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            # 401/403 here would mean metrics does not know access's credential
            # (a key it has not fetched yet): an outage to report, not a denial.
            log.error("metrics refused the class figures", status=response.status_code)
            raise MetricsUnavailable("Reading figures cannot be read right now.")
        figures: dict[str, Any] = response.json()
        return figures


def class_progress(
    school_class: SchoolClass,
    members: list[User],
    assignments: list[ClassAssignment],
    titles: dict[uuid.UUID, str | None],
    figures: dict[str, Any] | None,
) -> ClassProgress:
    reading = {
        (uuid.UUID(r["user_id"]), uuid.UUID(r["assignment_id"])): r
        for r in (figures or {}).get("reading", [])
    }
    rows: list[ProgressRow] = []
    summaries: list[AssignmentProgress] = []
    for assignment in assignments:
        title = titles.get(assignment.book_id)
        opened = completed = 0
        not_started: list[NotStarted] = []
        for user in members:
            found = reading.get((user.id, assignment.id), {})
            row = ProgressRow(
                user_id=user.id,
                username=user.username,
                display_name=user.display_name,
                assignment_id=assignment.id,
                book_id=assignment.book_id,
                title=title,
                due_at=assignment.due_at,
                opened=bool(found.get("opened", False)),
                opens=int(found.get("opens", 0)),
                progress_percent=int(found.get("progress_percent", 0)),
                completed_at=found.get("completed_at"),
                last_read_at=found.get("last_read_at"),
            )
            rows.append(row)
            opened += row.opened
            completed += row.completed_at is not None
            if not row.opened:
                not_started.append(NotStarted(user_id=user.id, display_name=user.display_name))
        summaries.append(
            AssignmentProgress(
                assignment_id=assignment.id,
                book_id=assignment.book_id,
                title=title,
                due_at=assignment.due_at,
                learners=len(members),
                opened=opened,
                completed=completed,
                not_started=not_started,
            )
        )
    return ClassProgress(
        class_id=school_class.id,
        name=school_class.name,
        figures_as_of=figures["as_of"] if figures else None,
        learners=len(members),
        assignments=summaries,
        rows=rows,
    )


CSV_COLUMNS = [
    "display_name",
    "username",
    "title",
    "due_at",
    "opened",
    "opens",
    "progress_percent",
    "completed_at",
    "last_read_at",
    "user_id",
    "book_id",
    "assignment_id",
]

# A cell a spreadsheet would take for a formula (OWASP "CSV injection"): names and
# titles are typed by children and volunteers, and the file is opened by a teacher.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# ...and one that splits into a formula where the spreadsheet's separator is
# another character than the file's (";" in French, Portuguese and Spanish
# locales: `Anna;=1+1` was a formula cell there, #37 F4).
_SPLIT_INTO_A_FORMULA = re.compile(r"[,;\t|]\s*[=+\-@]")


def csv_cell(value: object) -> str:
    """A JSON value of the report as its CSV cell: the same text (true/false, the
    same timestamps), empty for null, and a formula-like text quoted."""
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    if text.startswith(FORMULA_START) or _SPLIT_INTO_A_FORMULA.search(text):
        return "'" + text
    return text


def progress_csv(progress: ClassProgress) -> str:
    """The report's rows, as JSON has them, one line each (RFC 4180, CRLF), every
    cell in quotes: no locale's separator splits one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for row in progress.model_dump(mode="json")["rows"]:
        writer.writerow([csv_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()
