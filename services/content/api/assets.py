"""The published bucket's public pictures (covers and thumbnails), served by content
where no CDN serves them: the embedded run and compose (#38: without
CONTENT_PUBLISHED_ASSETS_URL no book had a cover_url there). In AWS, CloudFront
serves the same keys and books point there instead."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.content.api.common import NOT_MODIFIED, IfNoneMatch
from services.content.catalog import etag_matches
from services.content.components import ComponentsDep
from shared.contracts.errors import NotFound
from shared.http.problems import problem_responses

assets = APIRouter(prefix="/v1/assets", tags=["books"])


@assets.get(
    "/covers/{path:path}",
    summary="A cover or thumbnail, as the CDN would serve it (embedded run and compose)",
    responses={
        **NOT_MODIFIED,
        **problem_responses(404),
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
    },
)
async def public_picture(
    path: str, components: ComponentsDep, if_none_match: IfNoneMatch = None
) -> Response:
    found = await components.storage.public_picture(
        f"covers/{path}", max_bytes=components.settings.cover_max_bytes
    )
    if found is None:
        raise NotFound("No such picture.")
    headers = {"Cache-Control": found.cache_control, "ETag": found.etag}
    if found.etag and etag_matches(found.etag, if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)
