"""What the app serves, as one typed object, and the FastAPI dependencies that hand it out.

The lifespan builds a `Serving` once the engines run; routes receive its parts through the
`Annotated` aliases below, so they read as prose and never touch `app.state` themselves. The
generation routes, which FastAPI does not solve (`server.http.account_route`), read theirs with
the plain functions (`serving_of`, `text_generation_of`).

Every dependency is `async def`, though none awaits: FastAPI runs a plain `def` dependency in
its thread pool, a thread hop per dependency per request, which under load queues behind the
pool's 40 threads and delays even the answers that should be fastest (429, 401). And each takes
the request itself rather than another dependency: FastAPI solves every dependency of a route on
every request, and a generation route's used to cost it a third of a millisecond.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from server.auth import authenticate, check_account
from server.catalog.search import ModelCatalog
from server.finetunes.store import Finetunes
from server.generation.service import TextGeneration
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Serving:
    """Everything the routes serve from, built by the lifespan."""

    settings: Settings
    generation: TextGeneration
    catalog: ModelCatalog
    finetunes: Finetunes
    started_at: float


def serving_of(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


async def get_serving(request: Request) -> Serving:
    return serving_of(request)


def get_settings(request: Request) -> Settings:
    # Set at app creation, so authentication works before (and without) the lifespan.
    settings: Settings = request.app.state.settings
    return settings


Served = Annotated[Serving, Depends(get_serving)]


def text_generation_of(request: Request) -> TextGeneration:
    return serving_of(request).generation


async def get_catalog(request: Request) -> ModelCatalog:
    return serving_of(request).catalog


async def get_finetunes(request: Request) -> Finetunes:
    return serving_of(request).finetunes


ServedCatalog = Annotated[ModelCatalog, Depends(get_catalog)]
FinetuneRegistry = Annotated[Finetunes, Depends(get_finetunes)]


async def require_token(request: Request) -> None:
    authenticate(get_settings(request), request.headers.get("authorization"))


def authorize_account(request: Request) -> None:
    """The token first (401 before anything about the account), then the path's account. (Read
    from the path by hand: a declared parameter is validated again on every request, which
    cost more than the check. The OpenAPI document lists it, from the path.)"""
    settings = get_settings(request)
    authenticate(settings, request.headers.get("authorization"))
    # The path from the scope: `request.url` would build the whole URL for every request.
    check_account(settings, request.path_params["account_id"], request.scope["path"])


async def require_token_and_account(request: Request) -> None:
    authorize_account(request)


Authenticated = Depends(require_token)
AuthorizedAccount = Depends(require_token_and_account)
