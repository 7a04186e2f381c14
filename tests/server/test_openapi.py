"""`/openapi.json` is a valid OpenAPI 3.1 document that tells the truth about every route, and
`/docs` shows it to a person."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from server.catalog.json_schema import model_schema
from server.generation.specs import MODELS
from tests.support.app import QWQ, R1

Document = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")
RUN = "/client/v4/accounts/{account_id}/ai/run/{model}"


@pytest.fixture
def document(client: TestClient) -> Document:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: Document = response.json()
    return body


def operations(document: Document) -> list[tuple[str, str, Document]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: Document, node: Document) -> Document:
    while "$ref" in node:
        found: Document = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def test_the_document_is_valid_openapi_3_1(document: Document) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_path_parameter_is_declared(document: Document) -> None:
    for path, method, operation in operations(document):
        templated = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert declared == templated, f"{method} {path}"

    gateway = document["paths"]["/v1/{account_id}/{gateway_id}/workers-ai/{model}"]["post"]
    assert "gateway_id" in {parameter["name"] for parameter in gateway["parameters"]}


def test_no_operation_documents_a_validation_error_it_never_sends(document: Document) -> None:
    for path, method, operation in operations(document):
        assert "422" not in operation["responses"], f"{method} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_errors_are_cloudflare_envelopes_with_their_real_statuses(document: Document) -> None:
    run = document["paths"][RUN]["post"]
    statuses = {int(status) for status in run["responses"]}

    assert statuses == {200, 400, 401, 404, 405, 408, 413, 429, 500, 503}
    for status in statuses - {200}:
        response = resolve(document, run["responses"][str(status)])
        content = response["content"]["application/json"]
        assert resolve(document, content["schema"])["properties"]["success"] == {"const": False}
        assert content["example"]["errors"][0]["code"] > 0
    assert "Retry-After" in resolve(document, run["responses"]["429"])["headers"]


def test_every_authenticated_operation_needs_the_bearer_token(document: Document) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for path, method, operation in operations(document):
        expected: list[Document] = [] if path == "/health" else [{"bearer": []}]
        assert operation["security"] == expected, f"{method} {path}"
        if expected:
            assert "401" in operation["responses"], f"{method} {path}"


def test_the_run_body_is_generated_from_the_models_that_validate_it(document: Document) -> None:
    body = document["paths"][RUN]["post"]["requestBody"]["content"]["application/json"]
    inputs = [resolve(document, branch) for branch in body["schema"]["anyOf"]]
    schemas = document["components"]["schemas"]

    for spec, generated in zip((MODELS[QWQ], MODELS[R1]), inputs, strict=True):
        forms = model_schema(spec)["input"]["oneOf"]
        assert [set(form["properties"]) for form in generated["oneOf"]] == [
            set(form["properties"]) for form in forms
        ]
        assert [form["required"] for form in generated["oneOf"]] == [
            form["required"] for form in forms
        ]
    qwq_prompt = inputs[0]["oneOf"][0]["properties"]
    assert schemas["RunOptions"]["properties"]["rejectIfBusy"]["type"] == "boolean"
    assert qwq_prompt["top_p"]["anyOf"][0] == {"maximum": 2, "minimum": 0, "type": "number"}
    assert set(body["examples"]) >= {"prompt", "messages", "stream"}


def test_the_universal_form_pairs_each_model_with_its_own_input(document: Document) -> None:
    path = "/client/v4/accounts/{account_id}/ai/run"
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    pairs = {
        branch["properties"]["model"]["const"]: branch["properties"]["input"]["$ref"]
        for branch in body["schema"]["oneOf"]
    }

    assert pairs == {
        QWQ: "#/components/schemas/QwqInput",
        R1: "#/components/schemas/R1Input",
    }


def test_runs_and_openai_completions_may_stream(document: Document) -> None:
    for path in (RUN, "/client/v4/accounts/{account_id}/ai/v1/chat/completions"):
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}, path


def test_uploads_are_multipart_with_the_two_adapter_files(document: Document) -> None:
    path = "/client/v4/accounts/{account_id}/ai/finetunes/{finetune}/finetune-assets"
    body = document["paths"][path]["post"]["requestBody"]["content"]
    schema = body["multipart/form-data"]["schema"]

    assert schema["required"] == ["file_name", "file"]
    assert schema["properties"]["file_name"]["enum"] == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


def test_catalog_query_parameters_carry_the_parser_s_ranges(document: Document) -> None:
    search = document["paths"]["/client/v4/accounts/{account_id}/ai/models/search"]["get"]
    per_page = next(p for p in search["parameters"] if p["name"] == "per_page")

    assert per_page["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}


def test_the_docs_page_is_swagger_ui_over_the_document(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


def test_the_document_needs_no_token(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200


def test_health_documents_its_query(document: Document) -> None:
    health = document["paths"]["/health"]["get"]
    parameters = {p["name"]: p for p in health["parameters"]}

    assert parameters["model"]["schema"] == {"type": "array", "items": {"enum": [QWQ, R1]}}
    assert parameters["ready"]["schema"] == {
        "type": "string",
        "enum": ["all", "any"],
        "default": "all",
    }
    assert {"200", "400", "503"} <= set(health["responses"])
