"""The application factory."""

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.protocol import Engine
from server import (
    finetune_routes,
    gateway_routes,
    health,
    model_routes,
    openai_routes,
    routes,
)
from server.engines import bind_models, start_engines
from server.errors import (
    BadInput,
    InternalError,
    MethodNotAllowed,
    NoRoute,
    WorkersAIError,
)
from server.finetunes import serve_finetunes
from server.service import TextGeneration
from server.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings, engines: Mapping[str, Engine] | None = None) -> FastAPI:
    """Build the app. Engines start in the lifespan: the given ones (tests), else real vLLM."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            running = engines if engines is not None else await start_engines(settings, stack)
            models = bind_models(settings, running)
            app.state.models = models
            app.state.text_generation = TextGeneration(models, settings.request_timeout_s)
            app.state.finetunes = serve_finetunes(settings, models)
            yield

    app = FastAPI(
        title="workers-ai-local",
        summary="Cloudflare Workers AI's REST API, served by vLLM",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.started_at = time.time()
    app.state.models = {}
    app.include_router(health.router)
    app.include_router(routes.accounts, prefix="/client/v4")
    app.include_router(routes.accounts)
    app.include_router(model_routes.router, prefix="/client/v4")
    app.include_router(model_routes.router)
    app.include_router(openai_routes.router, prefix="/client/v4")
    app.include_router(openai_routes.router)
    app.include_router(finetune_routes.router, prefix="/client/v4")
    app.include_router(finetune_routes.router)
    app.include_router(gateway_routes.router)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WorkersAIError)
    async def workers_ai_error(request: Request, error: WorkersAIError) -> JSONResponse:
        return JSONResponse(error.envelope(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        mapped: WorkersAIError
        if error.status_code == 404:
            mapped = NoRoute()
        elif error.status_code == 405:
            mapped = MethodNotAllowed(request.method)
        else:
            mapped = InternalError()
        return JSONResponse(mapped.envelope(), status_code=mapped.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        mapped = BadInput("; ".join(str(item.get("msg")) for item in error.errors()))
        return JSONResponse(mapped.envelope(), status_code=mapped.status)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(InternalError().envelope(), status_code=500)
