"""Bearer-token authentication, as Workers AI's REST API does it."""

import hmac

from server.errors import AuthenticationError, CouldNotRoute
from server.settings import ConfigError, Settings


def check_token_policy(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without API tokens."""
    if not settings.api_tokens and not settings.loopback_only:
        raise ConfigError(
            f"refusing to listen on {settings.host} without API tokens: set "
            "WORKERS_AI_LOCAL_API_TOKENS (comma separated) or `api_tokens` in the config, "
            "or bind to 127.0.0.1"
        )


def authenticate(settings: Settings, authorization: str | None) -> None:
    """Accept the request or raise AuthenticationError (HTTP 401, code 10000).

    With no token configured every request is accepted: the server is then bound to loopback.
    """
    if not settings.api_tokens:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError()
    # Compare against every token so timing does not reveal which one (or how much) matched.
    matched = False
    for candidate in settings.api_tokens:
        matched |= hmac.compare_digest(candidate.encode(), token.strip().encode())
    if not matched:
        raise AuthenticationError()


def check_account(settings: Settings, account_id: str, path: str) -> None:
    """Raise CouldNotRoute (HTTP 404, code 7003) for an account this server does not serve."""
    if settings.account_ids and account_id not in settings.account_ids:
        raise CouldNotRoute(path)
