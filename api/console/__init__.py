"""The operator console: static pages served at ``/console``, a client of the REST API.

The pages are plain ES modules and CSS in ``static/`` (no build step): the browser
signs in with an API key and calls ``/v1`` exactly as any other client would, so the
console can do nothing its key cannot. The key is kept in the tab's ``sessionStorage``
and only ever sent in the ``Authorization`` header, never in a URL; the watch stream is
read with ``fetch`` (``EventSource`` cannot send that header).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "ConsoleFiles", "mount_console"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Everything the pages load comes from this server; nothing inline, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The pages change with the package: revalidate rather than run a stale module.
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The console's static files, each response carrying ``SECURITY_HEADERS``."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_console(app: FastAPI) -> None:
    """Serve the console at ``/console/`` (``/console`` redirects there)."""

    async def to_slash(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/console/", 308)

    app.add_route("/console", to_slash, include_in_schema=False)
    app.mount("/console", ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
