"""Schemathesis on the real server: generated `/ai/run` requests against the tiny vLLM engines
are answered as `/openapi.json` documents them, and never with a server error."""

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.live_server import TOKEN, RunningServer

RUN = "/client/v4/accounts/{account_id}/ai/run/{model}"
CASES = 50
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_generated_runs_are_answered_as_documented(
    server: RunningServer, api: httpx.Client
) -> None:
    schema = schemathesis.openapi.from_dict(api.get("/openapi.json").json())
    [run] = [
        result.ok()
        for result in schema.get_all_operations()
        if isinstance(result, Ok) and result.ok().path == RUN
    ]
    statuses: list[int] = []

    @given(case=run.as_strategy())
    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answered_as_documented(case: schemathesis.Case[Any]) -> None:
        response = case.call(
            base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        )
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    answered_as_documented()
    assert len(statuses) == CASES
    assert 200 in statuses, statuses  # the engines really ran some
