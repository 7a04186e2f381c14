"""Every route's dependencies run on the event loop: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request that, under load, delays even a 429."""

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute

from server.app import create_app
from tests.support.app import make_settings


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from dependencies(sub)


def test_every_dependency_is_a_coroutine_function() -> None:
    app = create_app(make_settings(), engines={})
    routes = [r for r in app.routes if isinstance(r, APIRoute | APIWebSocketRoute)]
    seen = [sub for route in routes for sub in dependencies(route.dependant)]

    sync = {
        getattr(sub.call, "__qualname__", repr(sub.call))
        for sub in seen
        if sub.call is not None and not inspect.iscoroutinefunction(sub.call)
    }

    assert len(routes) > 10
    assert len(seen) > 10
    assert sync == set()
