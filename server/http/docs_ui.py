"""Swagger UI at `/docs`, its script and styles served by the server itself.

A self-hosted server often runs offline, so the page must load nothing from elsewhere: FastAPI's
own `/docs` takes them from a CDN. The document is OpenAPI 3.1, which Swagger UI reads from 5.0
on. The files come from the `fastapi-offline` package (MIT; Swagger UI 5.x's dist files in its
`static/` folder): only those files are used, not its app factory.

    GET /docs                           the page, pointing at the document and the files below
    GET /docs/assets/swagger-ui-bundle.js
    GET /docs/assets/swagger-ui.css
    GET /docs/assets/favicon.png

Like the document, they need no token; none of them is in the document. An unknown file is the
app's 404 envelope, any method but GET or HEAD its 405 (StaticFiles raises HTTPException).
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")
SCRIPT = "swagger-ui-bundle.js"
STYLES = "swagger-ui.css"
FAVICON = "favicon.png"
# Swagger UI would send the document to swagger.io's validator for its badge: nothing leaves.
PARAMETERS: dict[str, Any] = {"validatorUrl": None}


def install(app: FastAPI) -> None:
    """Serve the page at `/docs` and its files under `/docs/assets` (call with `docs_url=None`).

    Install before any route whose path could match `/docs/...`: the first match wins."""
    # packages=: located by import spec, so the files are found wherever the package is installed.
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs_assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # as FastAPI's own `/docs`
        assets = root + ASSETS_PATH
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or ""),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/{SCRIPT}",
            swagger_css_url=f"{assets}/{STYLES}",
            swagger_favicon_url=f"{assets}/{FAVICON}",
            swagger_ui_parameters={**PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
