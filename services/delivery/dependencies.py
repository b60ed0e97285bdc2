"""FastAPI dependencies of the delivery service: its rule objects and the reading
app's reader."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.delivery.components import app_components
from services.delivery.links import LinkService
from services.delivery.reading import ReadingService
from shared.contracts.errors import Unauthorized
from shared.http.auth import Principal, current_principal, verifies_bearer

AUTH_DOCUMENT_REL = "http://opds-spec.org/auth/document"
AUTH_DOCUMENT_TYPE = "application/opds-authentication+json"


# No session up front: the hot paths open none (their one write joins a group commit).


async def get_link_service(request: Request) -> LinkService:
    return app_components(request.app).links


async def get_reading_service(request: Request) -> ReadingService:
    return app_components(request.app).reading


LinkServiceDep = Annotated[LinkService, Depends(get_link_service)]
ReadingServiceDep = Annotated[ReadingService, Depends(get_reading_service)]


@verifies_bearer
async def reading_app_reader(request: Request) -> Principal:
    """The signed-in reader of a reading app's acquisition. Refused, the 401 links the
    catalog's Authentication Document, so the app learns how to sign in (Authentication
    for OPDS 1.0, #38: the 401 said nothing of it)."""
    try:
        return await current_principal(request)
    except Unauthorized as refused:
        settings = app_components(request.app).settings
        catalog = settings.opds_catalog_url or str(request.base_url).rstrip("/")
        refused.headers["Link"] = (
            f'<{catalog}/opds/authentication>; rel="{AUTH_DOCUMENT_REL}"; '
            f'type="{AUTH_DOCUMENT_TYPE}"'
        )
        raise


ReadingAppReader = Annotated[Principal, Depends(reading_app_reader)]
