"""The application factory."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.protocol import Engine
from server import health
from server.binding import routes as binding_routes
from server.catalog import routes as catalog_routes
from server.catalog.search import served_catalog
from server.errors import (
    InternalError,
    MethodNotAllowed,
    NoRoute,
    WorkersAIError,
)
from server.finetunes import routes as finetune_routes
from server.finetunes.store import serve_finetunes
from server.generation.registry import bind_models, start_engines, watch_engines
from server.generation.service import TextGeneration
from server.http import docs_ui, metrics, openapi
from server.http.drain import Drain, DrainGate
from server.http.loop_watch import loop_watched
from server.http.request_log import RequestLoggedApp
from server.http.state import Serving
from server.openai_api import routes as openai_routes
from server.request_context import note_error
from server.settings import Settings
from server.validation_errors import bad_input
from server.workers_ai import routes as workers_ai_routes

logger = logging.getLogger(__name__)


# After an engine dies, the seconds left for in-flight requests to get their errors before
# `on_engine_failure` stops the server.
EXIT_AFTER_ENGINE_FAILURE_S = 2.0


def create_app(
    settings: Settings,
    engines: Mapping[str, Engine] | None = None,
    *,
    on_engine_failure: Callable[[], None] | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """Build the app. Engines start in the lifespan: the given ones (tests), else real vLLM.

    `on_engine_failure` (the CLI passes one that stops the server with a non-zero exit, as vLLM's
    own server does) is called once when an engine dies: a dead engine never comes back.
    `drain` (the CLI's, which its signal handling starts) refuses new requests once begun.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.enter_context(loop_watched())
            running = engines if engines is not None else await start_engines(settings, stack)
            models = bind_models(settings, running)
            generation = TextGeneration(models, settings.request_timeout_s)
            stack.callback(generation.close)
            app.state.serving = Serving(
                settings=settings,
                generation=generation,
                catalog=served_catalog(models.values()),
                finetunes=serve_finetunes(settings, models),
                started_at=started_at,
            )
            if on_engine_failure is not None:
                stop = on_engine_failure
                watchdog = asyncio.create_task(
                    watch_engines(models, lambda name: _after_engine_failure(name, stop))
                )
                stack.callback(watchdog.cancel)
            yield

    started_at = time.time()
    app = RequestLoggedApp(
        title="workers-ai-local",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI: `docs_ui`, served with its files, offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.drain = drain = drain or Drain()
    app.add_middleware(DrainGate, drain=drain)
    app.state.metrics = metrics.ServerMetrics(model.name for model in settings.models)
    docs_ui.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Workers AI's own routes answer with and without the `/client/v4` prefix.
    for router in (
        workers_ai_routes.router,
        catalog_routes.router,
        openai_routes.router,
        finetune_routes.router,
    ):
        app.include_router(router, prefix="/client/v4")
        app.include_router(router)
    app.include_router(binding_routes.router)  # Workers' `env.AI`, under Miniflare and wrangler
    # AI Gateway forms; Workers AI's bare `{model}` form last, as it matches any path.
    app.include_router(openai_routes.gateway)
    app.include_router(workers_ai_routes.gateway)
    _add_error_handlers(app)
    openapi.install(app, [model.name for model in settings.models])
    return app


def _after_engine_failure(model: str, stop: Callable[[], None]) -> None:
    logger.critical(
        "the engine of %s has stopped: exiting in %.0f s so that a supervisor restarts the server",
        model,
        EXIT_AFTER_ENGINE_FAILURE_S,
    )
    asyncio.get_running_loop().call_later(EXIT_AFTER_ENGINE_FAILURE_S, stop)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WorkersAIError)
    async def workers_ai_error(request: Request, error: WorkersAIError) -> JSONResponse:
        note_error(error.code)  # for the access line, as in every handler here
        return JSONResponse(error.envelope(), status_code=error.status, headers=error.headers())

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        mapped: WorkersAIError
        if error.status_code == 404:
            mapped = NoRoute()
        elif error.status_code == 405:
            mapped = MethodNotAllowed(request.method)
        else:
            mapped = InternalError()
        note_error(mapped.code)
        return JSONResponse(mapped.envelope(), status_code=mapped.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        mapped = bad_input(error.errors(), source="request")
        note_error(mapped.code)
        return JSONResponse(mapped.envelope(), status_code=mapped.status)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        note_error(InternalError.code)
        return JSONResponse(InternalError().envelope(), status_code=500)
