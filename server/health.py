"""`GET /health`: whether this server can answer, for load balancers, probes and people.

    GET /health                         200 when every model is up, 503 otherwise
    GET /health?model=A&model=B         judged on A and B only
    GET /health?ready=any               200 when at least one model is up
    GET /health?model=A&model=B&ready=any   200 when A or B is up

`model` chooses the models that are judged (every served one by default); `ready` says how many
of them must be up: `all` (the default) or `any`. `ready=any` is for a readiness probe in front of
a Service that carries every model: one model's upstream outage then fails only that model's
requests (3040, "not available right now") instead of taking every gateway, and every other
model, out of the Service. The body reports every model whatever was asked, so that an operator
sees everything.

From the moment a shutdown signal starts the drain (`server.http.drain`) the answer is 503
`draining`, whatever the query, so that load balancers stop sending.

A query this route does not understand is refused with Cloudflare's envelope, never ignored: an
unknown parameter or a `ready` other than `all`/`any` (400, 5006), a model not served here (400,
5007, as the run routes answer). The Workers AI routes ignore unknown query parameters as
Cloudflare does; this route is the server's own, and a probe whose typo (`?redy=any`) were ignored
would judge every model without anyone noticing, the coupling it was written to avoid.
"""

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import BadInput, NoSuchModel
from server.generation.registry import ServedModel
from server.http.drain import AppDrain
from server.http.state import Served
from server.validation_errors import bad_input

router = APIRouter()

ReadyMode = Literal["all", "any"]


class HealthQuery(BaseModel):
    """The query of `GET /health`; nothing but these two parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: list[str] = Field(
        default_factory=list,
        description="Judge only these served models (repeat the parameter for several); "
        "the body still reports every model.",
    )
    ready: ReadyMode = Field(
        default="all",
        description="How many of the judged models must be up for a 200: `all`, or `any` "
        "(at least one).",
    )


@router.get("/health")
async def health(serving: Served, drain: AppDrain, request: Request) -> JSONResponse:
    models = serving.generation.models
    if drain.draining:
        return JSONResponse({"status": "draining", "models": await report(models)}, 503)
    query = parse_health_query(request.query_params.multi_items())
    judged = judged_models(query, models.keys())
    models_report = await report(models)
    up = [models_report[name]["healthy"] for name in judged]
    # No model served at all is not healthy, whichever the mode.
    healthy = bool(up) and (any(up) if query.ready == "any" else all(up))
    body = {"status": "ok" if healthy else "unavailable", "models": models_report}
    return JSONResponse(body, status_code=200 if healthy else 503)


def parse_health_query(items: Iterable[tuple[str, str]]) -> HealthQuery:
    """Parse the query's (name, value) pairs: `model` may repeat; of another repeated parameter
    the last value counts, as FastAPI reads a scalar one.

    Raises BadInput (5006) naming an unknown parameter or a `ready` other than `all`/`any`.
    """
    given: dict[str, Any] = {}
    for name, value in items:
        if name == "model":
            given.setdefault("model", []).append(value)
        else:
            given[name] = value
    try:
        return HealthQuery.model_validate(given)
    except ValidationError as error:
        raise bad_input(error.errors(include_url=False), source="query") from None


def judged_models(query: HealthQuery, served: Collection[str]) -> list[str]:
    """The models whose health decides the answer: those asked for, else every served one.

    Raises BadInput (5006) for an empty `model`, NoSuchModel (5007) for a model not served here.
    """
    for name in query.model:
        if not name:
            raise BadInput("query parameter 'model' must name a served model")
        if name not in served:
            raise NoSuchModel(name)
    return query.model or list(served)


async def report(models: Mapping[str, ServedModel]) -> dict[str, dict[str, Any]]:
    """What `/health` says of each served model."""
    reported: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        status = await model.engine.status()
        reported[name] = {
            "healthy": status.healthy,
            "running_requests": status.running_requests,
            "waiting_requests": status.waiting_requests,
            "context_window": model.context_window,
            **({"stand_in": model.stand_in} if model.stand_in else {}),
            **(
                {"swap_group": status.swap.group, "state": status.swap.state} if status.swap else {}
            ),
            **({"remote": True} if model.remote else {}),
        }
    return reported
