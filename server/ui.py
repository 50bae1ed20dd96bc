"""The chat UI: index.html at /, its assets under /static/, and /config.json."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from server import keys

# Explicit types: the platform's mime tables differ (application/javascript, missing
# .mjs, ...) and the API answers with nosniff, so a wrong guess breaks module loading.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}
# No build step means no fingerprinted file names: let browsers keep copies but
# revalidate them (ETag / Last-Modified make that a cheap 304).
ASSET_CACHE = "no-cache"


def default_static_dir() -> Path:
    """Return static/ next to the package (source checkout), else under the working dir."""
    beside_package = Path(__file__).resolve().parent.parent / "static"
    if (beside_package / "index.html").is_file():
        return beside_package
    return Path.cwd() / "static"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_base: str) -> str:
    """Return the page's CSP: own scripts and styles only; API and socket origins named.

    Built from settings alone, never from the request: a ``Host`` header copied in here
    could add directives (``Host: x; report-uri ...``). ``'self'`` covers the page's own
    ``ws:``/``wss:`` origin (CSP Level 3, in every current browser).
    """
    connect = ["'self'"]
    api_origin = _origin(api_base) if api_base else None
    if api_origin is not None:
        socket_origin = api_origin.replace("http", "ws", 1)
        connect += [api_origin, socket_origin]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            # No remote images: an answer must not be able to beacon data out (prompt injection).
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class UiFiles:
    """Serve the UI's files from one directory, never outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def index(self, request: web.Request) -> web.StreamResponse:
        """Serve index.html (revalidated on every load, framed by no one)."""
        path = self.root / "index.html"
        if not path.is_file():
            raise web.HTTPNotFound()
        api_base = request.app[keys.SETTINGS].ui_api_base
        headers = {
            "Content-Type": CONTENT_TYPES[".html"],
            "Cache-Control": ASSET_CACHE,
            "Content-Security-Policy": content_security_policy(api_base),
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
        }
        return web.FileResponse(path, headers=headers)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        """Serve one file under static/ with an explicit Content-Type."""
        path = self._resolve(request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound()
        headers = {"Content-Type": CONTENT_TYPES[path.suffix], "Cache-Control": ASSET_CACHE}
        return web.FileResponse(path, headers=headers)

    def _resolve(self, relative: str) -> Path | None:
        parts = relative.split("/")
        if any(not part or part.startswith(".") for part in parts):
            return None  # empty segments, "..", dotfiles
        try:  # a NUL byte (ValueError) or an over-long name (OSError) is no file of ours
            path = (self.root / relative).resolve()
            if not path.is_relative_to(self.root) or path.suffix not in CONTENT_TYPES:
                return None
            return path if path.is_file() else None
        except (ValueError, OSError):
            return None


async def ui_config(request: web.Request) -> web.Response:
    """Tell the UI where the API is and whether the demo model is answering."""
    settings = request.app[keys.SETTINGS]
    body = {
        "api_base": settings.ui_api_base or "",
        "demo_model": bool(request.app.get(keys.DEMO_MODEL_ACTIVE, False)),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def setup_ui(app: web.Application, static_dir: Path | None = None) -> None:
    """Serve the chat UI: / (index.html), /static/{path}, /config.json."""
    files = UiFiles(static_dir or default_static_dir())
    app.router.add_get("/", files.index)
    app.router.add_get("/static/{path:.+}", files.asset)
    app.router.add_get("/config.json", ui_config)
