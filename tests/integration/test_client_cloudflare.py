"""The official `cloudflare` Python SDK, unchanged apart from its base URL, against the server.

The SDK builds `{base}/accounts/{account}/ai/run/{model}` with the model's slashes
percent-encoded (`@cf%2Fqwen%2Fqwq-32b`), unwraps the envelope's `result` and returns it as a
plain dict; it pages `ai/models/search` by incrementing `page` until a page comes back empty, and
raises its own `APIStatusError` subclasses with the envelope's `errors` parsed.
"""

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

import cloudflare
import httpx
import jsonschema
import pytest
from cloudflare import Cloudflare
from cloudflare.types.ai.ai_run_params import MessagesMessage

from tests.support.live_server import TOKEN, RunningServer

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
BOTH = pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
ACCOUNT = "acct"
PROMPT = "Why is the sky blue?"
MESSAGES: list[MessagesMessage] = [
    {"role": "system", "content": "You are a friendly assistant"},
    {"role": "user", "content": "Why is pizza so good?"},
]
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def sent() -> list[httpx.Request]:
    """Every request the SDK sent, in order."""
    return []


@pytest.fixture(scope="module")
def sdk(server: RunningServer, sent: list[httpx.Request]) -> Iterator[Cloudflare]:
    recording = httpx.Client(event_hooks={"request": [sent.append]})
    with Cloudflare(
        api_token=TOKEN, base_url=server.url("/client/v4"), http_client=recording
    ) as client:
        yield client


def native_result(api: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The same request sent by hand, for comparison with what the SDK returns."""
    response = api.post(f"/client/v4/accounts/{ACCOUNT}/ai/run/{model}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def assert_generation(answer: object, max_tokens: int) -> dict[str, Any]:
    assert isinstance(answer, dict), f"the SDK did not unwrap `result`: {answer!r}"
    assert isinstance(answer["response"], str)
    assert answer["tool_calls"] == []
    usage = answer["usage"]
    counts = [usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]]
    assert all(type(count) is int for count in counts), usage
    assert usage["prompt_tokens"] > 0
    assert 1 <= usage["completion_tokens"] <= max_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    return answer


def data_event(line: str) -> dict[str, Any]:
    assert line.startswith("data: "), line
    event: dict[str, Any] = json.loads(line.removeprefix("data: "))
    return event


@BOTH
def test_run_with_a_prompt_returns_the_unwrapped_result(
    sdk: Cloudflare, api: httpx.Client, sent: list[httpx.Request], model: str
) -> None:
    answer = sdk.ai.run(
        model, account_id=ACCOUNT, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )

    result = assert_generation(answer, MAX_TOKENS)
    # The SDK encodes the model's slashes; the server must route that form too.
    encoded = model.replace("/", "%2F")
    assert sent[-1].url.raw_path.decode() == f"/client/v4/accounts/{ACCOUNT}/ai/run/{encoded}"
    assert sent[-1].headers["authorization"] == f"Bearer {TOKEN}"
    body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    assert result == native_result(api, model, body)


@BOTH
def test_run_with_messages_returns_the_unwrapped_result(
    sdk: Cloudflare, api: httpx.Client, model: str
) -> None:
    answer = sdk.ai.run(
        model, account_id=ACCOUNT, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0
    )

    result = assert_generation(answer, MAX_TOKENS)
    body = {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    assert result == native_result(api, model, body)


def test_streamed_run_through_the_sdk_raw_response(sdk: Cloudflare) -> None:
    """`ai.run(stream=True)` cannot parse SSE (it tries to unwrap `result` from the text);
    the SDK's way to stream is `with_streaming_response`, which hands over the raw lines."""
    with sdk.ai.with_streaming_response.run(
        QWQ, account_id=ACCOUNT, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    events = [data_event(line) for line in lines[:-1]]
    assert all(isinstance(event["response"], str) for event in events)
    usage = events[-1]["usage"]
    assert events[-1]["response"] == ""
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= MAX_TOKENS


def test_models_list_auto_paginates_over_every_model_once(
    sdk: Cloudflare, sent: list[httpx.Request]
) -> None:
    first = sdk.ai.models.list(account_id=ACCOUNT, per_page=1)
    assert first.result_info is not None
    assert (first.result_info.page, first.result_info.per_page) == (1, 1)
    # `count` and `total_count` are not in the SDK's model; they are kept as extra fields.
    assert first.result_info.to_dict() == {"page": 1, "per_page": 1, "count": 1, "total_count": 2}

    start = len(sent)
    # Capped: a server that ignored `page` would keep the SDK paging forever.
    entries = list(islice(first, 10))

    names = []
    for entry in entries:
        assert isinstance(entry, dict)
        assert entry["task"]["name"] == "Text Generation"
        assert isinstance(entry["id"], str)
        names.append(entry["name"])
    assert sorted(names) == sorted([QWQ, R1])
    # Page 1 was already fetched; then page 2 (one model) and page 3 (empty: the SDK stops).
    searches = [request.url for request in sent[start:]]
    assert [url.path for url in searches] == [f"/client/v4/accounts/{ACCOUNT}/ai/models/search"] * 2
    assert [url.params.get("page") for url in searches] == ["2", "3"]
    assert all(url.params.get("per_page") == "1" for url in searches)


@BOTH
def test_schema_get_returns_input_and_output_json_schemas(
    sdk: Cloudflare, api: httpx.Client, model: str
) -> None:
    schema = sdk.ai.models.schema.get(account_id=ACCOUNT, model=model)

    assert schema.input.type == "object"
    assert schema.output.type == "object"
    input_schema = schema.input.to_dict()
    output_schema = schema.output.to_dict()
    assert len(input_schema["oneOf"]) == 2  # type: ignore[arg-type]
    jsonschema.Draft202012Validator.check_schema(input_schema)
    jsonschema.validate({"prompt": PROMPT, "max_tokens": 4}, input_schema)
    jsonschema.validate({"messages": MESSAGES}, input_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"prompt": PROMPT, "temperature": 9}, input_schema)
    # The output schema describes what `ai.run` returns.
    answer = native_result(api, model, {"prompt": PROMPT, "max_tokens": 2, "temperature": 0})
    jsonschema.validate(answer, output_schema)


def test_bad_token_is_the_sdk_authentication_error(server: RunningServer) -> None:
    with (
        Cloudflare(api_token="not-the-token", base_url=server.url("/client/v4")) as client,
        pytest.raises(cloudflare.AuthenticationError) as raised,
    ):
        client.ai.run(QWQ, account_id=ACCOUNT, prompt=PROMPT, max_tokens=2)

    error = raised.value
    assert isinstance(error, cloudflare.APIStatusError)
    assert error.status_code == 401
    assert [(item.code, item.message) for item in error.errors] == [(10000, "Authentication error")]
    assert error.body == {
        "result": None,
        "success": False,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
    }


def test_unknown_model_is_the_sdk_bad_request_error(sdk: Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as raised:
        sdk.ai.run("@cf/meta/no-such-model", account_id=ACCOUNT, prompt=PROMPT, max_tokens=2)

    error = raised.value
    assert error.status_code == 400
    assert [(item.code, item.message) for item in error.errors] == [
        (5007, "No such model @cf/meta/no-such-model or task")
    ]


def test_out_of_range_parameter_is_the_sdk_bad_request_error(sdk: Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as raised:
        sdk.ai.run(QWQ, account_id=ACCOUNT, prompt=PROMPT, max_tokens=2, temperature=9)

    [item] = raised.value.errors
    assert item.code == 5006
    assert item.message is not None
    assert item.message.startswith("AiError: Bad input: Error: ")
    assert "temperature" in item.message
