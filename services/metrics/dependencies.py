"""FastAPI dependencies of the metrics service: who may see which figures, and a reader."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from services.metrics import queries
from services.metrics.components import ComponentsDep
from services.metrics.figures import MetricsReader
from shared.contracts.clock import now_utc
from shared.contracts.decisions import Action
from shared.contracts.errors import Forbidden, NotFound
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.service.deps import CurrentPrincipal, ResourcesDep, SessionDep

PLATFORM_FIGURES = Role.CONTENT_ADMIN


async def get_reader(session: SessionDep, components: ComponentsDep) -> MetricsReader:
    return MetricsReader(
        session,
        components.sketches,
        now_utc(),
        review_overdue_days=components.settings.review_overdue_days,
    )


ReaderDep = Annotated[MetricsReader, Depends(get_reader)]


async def platform_figures(principal: CurrentPrincipal, resources: ResourcesDep) -> Principal:
    """CONTENT_ADMIN and up, decided by access on the account's current role."""
    await resources.access.require(principal, Action.METRICS_READ, minimum=PLATFORM_FIGURES)
    return principal


PlatformViewer = Annotated[Principal, Depends(platform_figures)]


async def require_book_figures(
    principal: Principal, resources: ResourcesDep, session: SessionDep, book_id: uuid.UUID
) -> uuid.UUID | None:
    """Platform viewers see every book's figures (None); a teacher sees those of the
    books they granted to someone, counted over the learners they granted them to
    (their id is returned to limit the figures); nobody else sees any."""
    if principal.kind == "user" and principal.role.at_least(PLATFORM_FIGURES):
        await resources.access.require(principal, Action.METRICS_READ, minimum=PLATFORM_FIGURES)
        return None
    if principal.kind != "user" or principal.role is not Role.TEACHER:
        raise Forbidden("Figures are for content admins, and teachers for their own books.")
    # Still a teacher now (a demotion counts at once), and this book is one of theirs.
    await resources.access.require(principal, Action.ENTITLEMENT_GRANT, minimum=Role.TEACHER)
    if not await queries.granted_by(session, principal.user_id, book_id):
        raise Forbidden("Teachers see figures for the books they granted.", code="not-your-book")
    return principal.user_id


async def require_most_read(principal: Principal, resources: ResourcesDep) -> None:
    """The most read books: for CONTENT_ADMIN and up, and for the content service
    (its OPDS feeds' "most read" group, #20)."""
    if principal.kind == "service":
        if principal.subject != "service:content":
            raise Forbidden("Of the services, only content reads the most read books.")
        return
    await platform_figures(principal, resources)


async def require_class_figures(
    principal: Principal, resources: ResourcesDep, session: SessionDep, class_id: uuid.UUID
) -> None:
    """A class's figures (#19) are for its teacher, for CONTENT_ADMIN and up, and for
    the access service (its class report: access has checked the class is the
    caller's). Another teacher's class, or one metrics has not heard of, is a 404
    (as access answers): a teacher learns nothing of classes that are not theirs."""
    if principal.kind == "service":
        if principal.subject != "service:access":
            raise Forbidden("Of the services, only access reads class figures.")
    elif principal.kind == "user" and principal.role.at_least(PLATFORM_FIGURES):
        await resources.access.require(principal, Action.METRICS_READ, minimum=PLATFORM_FIGURES)
    elif principal.kind == "user" and principal.role is Role.TEACHER:
        await resources.access.require(principal, Action.ENTITLEMENT_GRANT, minimum=Role.TEACHER)
        found = await queries.school_class(session, class_id)
        if found is None or found.teacher_id != principal.user_id:
            raise NotFound("No class of yours has this id.")
        return
    else:
        raise Forbidden("Class figures are for the class's teacher and content admins.")
    if await queries.school_class(session, class_id) is None:
        raise NotFound("No figures for this class yet.")
