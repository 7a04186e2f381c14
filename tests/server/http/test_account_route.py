"""Every route of an account asks for the token, then the account, whichever way it is built:
the generation routes as `AccountRoute`s, the others through FastAPI's dependency."""

import re

import pytest
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.http.account_route import AccountRoute
from server.http.state import AuthorizedAccount
from tests.support.app import AUTH, ClientFactory
from tests.support.envelopes import assert_error


def account_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every route with `{account_id}` in its path, its parameters filled."""
    found: list[tuple[str, str]] = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and "{account_id}" in route.path:
            path = route.path.replace("{account_id}", "other")
            path = re.sub(r"\{model(:path)?\}", "@cf/qwen/qwq-32b", path)
            path = re.sub(r"\{\w+(:path)?\}", "x", path)
            found.extend((method, path) for method in sorted(route.methods))
    return found


def test_the_generation_routes_are_account_routes(client: TestClient) -> None:
    generation = [
        route
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and re.search(r"/run|/completions", route.path)
    ]

    assert len(generation) >= 8
    assert all(isinstance(route, AccountRoute) for route in generation)


def test_every_account_route_needs_a_token(client: TestClient) -> None:
    routes = account_routes(client)

    assert len(routes) >= 15
    for method, path in routes:
        response = client.request(method, path, json={"prompt": "a"})
        assert_error(response, 401, 10000, "Authentication error")


def test_every_account_route_checks_the_account(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["mine"])

    for method, path in account_routes(client):
        response = client.request(method, path, json={"prompt": "a"}, headers=AUTH)
        message = f"Could not route to {path}, perhaps your object identifier is invalid?"
        assert_error(response, 404, 7003, message)


def test_an_endpoint_that_declares_more_than_the_request_is_refused() -> None:
    router = APIRouter(route_class=AccountRoute)

    async def endpoint(request: Request, stream: bool = False) -> Response:
        return Response()

    with pytest.raises(TypeError, match="takes the request alone"):
        router.add_api_route("/accounts/{account_id}/x", endpoint, methods=["POST"])


def test_a_router_with_dependencies_is_refused() -> None:
    router = APIRouter(route_class=AccountRoute, dependencies=[AuthorizedAccount])

    async def endpoint(request: Request) -> Response:
        return Response()

    with pytest.raises(TypeError, match="declares no dependencies"):
        router.add_api_route("/accounts/{account_id}/x", endpoint, methods=["POST"])
