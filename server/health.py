"""`GET /health`: 200 when every engine is up, 503 otherwise, and 503 `draining` from the moment
a shutdown signal starts the drain (`server.http.drain`), so that load balancers stop sending."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.http.drain import AppDrain
from server.http.state import Served

router = APIRouter()


@router.get("/health")
async def health(serving: Served, drain: AppDrain) -> JSONResponse:
    models = serving.generation.models
    report: dict[str, Any] = {}
    healthy = bool(models)
    for name, model in models.items():
        status = await model.engine.status()
        healthy = healthy and status.healthy
        report[name] = {
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
    if drain.draining:
        return JSONResponse({"status": "draining", "models": report}, status_code=503)
    body = {"status": "ok" if healthy else "unavailable", "models": report}
    return JSONResponse(body, status_code=200 if healthy else 503)
