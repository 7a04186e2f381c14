"""Schemathesis drives every operation of `/openapi.json` over the fake engines, with valid
input (positive) and input that breaks the document (negative): no answer is a server error, and
every answer (status, content type, body) is one the document declares for that operation."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from tests.support.app import AUTH, lora_models, make_settings
from tests.support.fake_engine import FakeEngine

CASES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}  # per operation
MIN_CASES = 1000
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def schema(engines: dict[str, FakeEngine], tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    """The app's own document, loaded over ASGI; both models serve LoRA, so finetunes work."""
    app = create_app(
        make_settings(models=lora_models(), adapters_dir=tmp_path / "adapters"), engines=engines
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()


@pytest.mark.parametrize("mode", list(CASES), ids=lambda mode: mode.value)
def test_every_operation_answers_as_documented(
    schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    cases = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document loads whole
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=CASES[mode],
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: schemathesis.Case[Any]) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=AUTH)
            case.validate_response(response, checks=CHECKS)

        try:
            answers_as_documented()
        except Unsatisfiable:
            # Nothing to break: an operation without parameters or body (`GET /health`).
            assert mode is GenerationMode.NEGATIVE
    print(f"{mode.value}: {cases} cases in {time.monotonic() - started:.1f} s")
    assert cases >= MIN_CASES * CASES[mode] // sum(CASES.values())
