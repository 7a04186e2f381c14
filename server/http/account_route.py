"""The route class of the generation routes: the token and the account, then the endpoint.

    router = APIRouter(route_class=AccountRoute)

    @router.post("/accounts/{account_id}/ai/run/{model:path}")
    async def run_model(request: Request) -> Response: ...

An `AccountRoute` checks the bearer token, then the path's `account_id` (`authorize_account`,
which the other account routes run as their dependency), and calls its endpoint with the
request alone. FastAPI's own handler, which reads declared parameters and solves the
dependencies of every request, is not in the way: on a generation request it cost about 0.15 ms
of the event loop's time, and a burst of requests waits for each other's. What a generic
handler would read, an endpoint reads itself (`server.http.body`, `server.http.state`); so an
endpoint that declares anything else, or a router with dependencies, is refused when the route
is created, rather than silently skipped. Errors raised by the check or the endpoint reach the
app's exception handlers as on any route.
"""

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from server.http.state import authorize_account

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class AccountRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        parameters = list(inspect.signature(endpoint).parameters.values())
        takes_request_alone = len(parameters) == 1 and parameters[0].annotation is Request
        if not takes_request_alone or self.dependencies:
            raise TypeError(
                f"{endpoint.__name__}: an AccountRoute's endpoint takes the request alone, "
                "and its router declares no dependencies"
            )

    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            authorize_account(request)
            return await endpoint(request)

        return handle
