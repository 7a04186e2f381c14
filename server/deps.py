"""FastAPI dependencies, as `Annotated` aliases so routes read as prose."""

from typing import Annotated

from fastapi import Depends, Request

from server.auth import authenticate, check_account
from server.service import TextGeneration
from server.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_text_generation(request: Request) -> TextGeneration:
    service: TextGeneration = request.app.state.text_generation
    return service


AppSettings = Annotated[Settings, Depends(get_settings)]
TextGenerationService = Annotated[TextGeneration, Depends(get_text_generation)]


def require_token(request: Request, settings: AppSettings) -> None:
    authenticate(settings, request.headers.get("authorization"))


def require_served_account(request: Request, settings: AppSettings, account_id: str) -> None:
    check_account(settings, account_id, request.url.path)


Authenticated = Depends(require_token)
ServedAccount = Depends(require_served_account)
