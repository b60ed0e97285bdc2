"""The dashboard: one page and its fixed assets, which read the figures' endpoints
in the viewer's browser (with the viewer's own token: the page itself holds no data)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from services.metrics.components import ComponentsDep
from shared.contracts.errors import NotFound

dashboard = APIRouter(prefix="/dashboard", include_in_schema=False)

STATIC = Path(__file__).parent.parent / "dashboard" / "static"
CHART_LIBRARY = (
    Path(__file__).parent.parent
    / "dashboard"
    / "node_modules"
    / "chart.js"
    / "dist"
    / "chart.umd.min.js"
)
ASSETS = {
    "dashboard.js": (STATIC / "dashboard.js", "text/javascript"),
    "dashboard.css": (STATIC / "dashboard.css", "text/css"),
    "favicon.svg": (STATIC / "favicon.svg", "image/svg+xml"),
    "chart.umd.min.js": (CHART_LIBRARY, "text/javascript"),
}
# The page runs only its own scripts, talks only to itself and the sign-in URL.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {login_origin}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dashboard.get("", response_class=HTMLResponse)
async def dashboard_page(components: ComponentsDep) -> Any:
    settings = components.settings
    login_url = settings.login_url()
    page = (
        (STATIC / "index.html")
        .read_text()
        .replace("{{LOGIN_URL}}", html.escape(login_url, quote=True))
        .replace("{{REFRESH_SECONDS}}", str(settings.dashboard_refresh_seconds))
    )
    origin = login_url.split("/v1/")[0] if "://" in login_url else ""
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": CSP.format(login_origin=origin).replace("  ", " "),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@dashboard.get("/assets/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    found = ASSETS.get(name)  # a fixed list: no path from the request reaches the disk
    if found is None:
        raise NotFound("No such asset.")
    path, media_type = found
    if not path.is_file():
        raise NotFound(f"{name} is not built: run `make install` (npm ci in the dashboard).")
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
