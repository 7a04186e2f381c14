"""What the app serves, as one typed object, and the FastAPI dependencies that hand it out.

The lifespan builds a `Serving` once the engines run; routes receive its parts through the
`Annotated` aliases below, so they read as prose and never touch `app.state` themselves.
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


def get_serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


def get_settings(request: Request) -> Settings:
    # Set at app creation, so authentication works before (and without) the lifespan.
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
Served = Annotated[Serving, Depends(get_serving)]


def get_text_generation(serving: Served) -> TextGeneration:
    return serving.generation


def get_catalog(serving: Served) -> ModelCatalog:
    return serving.catalog


def get_finetunes(serving: Served) -> Finetunes:
    return serving.finetunes


TextGenerationService = Annotated[TextGeneration, Depends(get_text_generation)]
ServedCatalog = Annotated[ModelCatalog, Depends(get_catalog)]
FinetuneRegistry = Annotated[Finetunes, Depends(get_finetunes)]


def require_token(request: Request, settings: AppSettings) -> None:
    authenticate(settings, request.headers.get("authorization"))


def require_served_account(request: Request, settings: AppSettings, account_id: str) -> None:
    check_account(settings, account_id, request.url.path)


Authenticated = Depends(require_token)
ServedAccount = Depends(require_served_account)
