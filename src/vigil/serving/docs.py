"""``/docs`` (Swagger UI) and ``/redoc`` with their assets served by the API itself.

FastAPI's default pages load their JavaScript and CSS from a CDN, so they are blank offline.
Swagger UI 5 (it renders the OpenAPI 3.1 documents FastAPI emits) comes from the static
folder of the ``swagger-ui-py`` package, located without importing it; ReDoc's standalone
bundle is vendored in ``static/redoc`` (MIT, see its README).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def _swagger_ui_dir() -> Path:
    """``swagger_ui/static`` of ``swagger-ui-py``; the package itself is never imported."""
    spec = find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("Swagger UI's assets are missing: pip install swagger-ui-py")
    return Path(spec.origin).parent / "static"


REDOC_DIR = Path(__file__).parent / "static" / "redoc"
SWAGGER_PREFIX = "/static/swagger-ui"
REDOC_PREFIX = "/static/redoc"


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add ``/docs``, its OAuth2 redirect and ``/redoc``.

    The app must be built with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages).
    """
    app.mount(SWAGGER_PREFIX, StaticFiles(directory=_swagger_ui_dir()), name="swagger-ui")
    app.mount(REDOC_PREFIX, StaticFiles(directory=REDOC_DIR), name="redoc")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{SWAGGER_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_PREFIX}/favicon-32x32.png",
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{REDOC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{SWAGGER_PREFIX}/favicon-32x32.png",
            with_google_fonts=False,
        )
