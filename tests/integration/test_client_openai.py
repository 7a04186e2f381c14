"""The `openai` Python SDK, unchanged apart from its base URL, against the OpenAI-compatible routes.

Base URL `{base}/client/v4/accounts/{account}/ai/v1`, the token as `api_key`. The reasoning before
`</think>` arrives in the message's (and delta's) extra field `reasoning_content`, which the SDK
keeps in `model_extra`. Errors keep Workers AI's Cloudflare envelope: the SDK raises the right
`APIStatusError` subclass by status and exposes the envelope as `error.body`, but, finding no
OpenAI `error` object in it, leaves `code`/`type`/`param` empty and its message at "Error code: N".
"""

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.live_server import TOKEN, RunningServer

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
BOTH = pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
ACCOUNT = "acct"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a friendly assistant"},
    {"role": "user", "content": "Why is pizza so good?"},
]
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def sdk(server: RunningServer) -> Iterator[openai.OpenAI]:
    base_url = server.url(f"/client/v4/accounts/{ACCOUNT}/ai/v1")
    with openai.OpenAI(base_url=base_url, api_key=TOKEN) as client:
        yield client


def native_result(api: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The same request on the native route: the OpenAI answer must be this one, reshaped."""
    response = api.post(f"/client/v4/accounts/{ACCOUNT}/ai/run/{model}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def split(response: str) -> tuple[str | None, str | None]:
    """(reasoning_content, content) as the server splits a native response at `</think>`."""
    reasoning, marker, answer = response.partition("</think>")
    if not marker:
        reasoning, answer = response, ""
    return reasoning or None, answer or None


def native_usage(result: dict[str, Any]) -> tuple[int, int, int]:
    usage = result["usage"]
    return usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]


@BOTH
def test_chat_completion(sdk: openai.OpenAI, api: httpx.Client, model: str) -> None:
    completion = sdk.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0
    )

    assert completion.object == "chat.completion"
    assert completion.model == model
    assert completion.id.startswith("chatcmpl-")
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.finish_reason in ("stop", "length")
    message = choice.message
    assert message.role == "assistant"
    extra = message.model_extra or {}
    native = native_result(
        api, model, {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    )
    reasoning, content = split(native["response"])
    assert message.content == content
    assert extra.get("reasoning_content") == reasoning
    assert message.tool_calls is None
    assert completion.usage is not None
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == native_usage(
        native
    )
    assert 1 <= usage.completion_tokens <= MAX_TOKENS


@BOTH
def test_streamed_chat_completion_with_usage(
    sdk: openai.OpenAI, api: httpx.Client, model: str
) -> None:
    native = native_result(
        api, model, {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    )
    whole = sdk.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0
    )
    stream = sdk.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert {chunk.model for chunk in chunks} == {model}
    *deltas, last = chunks
    assert deltas[0].choices[0].delta.role == "assistant"
    content = "".join(chunk.choices[0].delta.content or "" for chunk in deltas)
    reasoning = "".join(
        (chunk.choices[0].delta.model_extra or {}).get("reasoning_content", "") for chunk in deltas
    )
    expected_reasoning, expected_content = split(native["response"])
    assert reasoning == (expected_reasoning or "")
    assert content == (expected_content or "")
    [whole_choice] = whole.choices
    finish_reasons = [chunk.choices[0].finish_reason for chunk in deltas]
    assert finish_reasons[-1] == whole_choice.finish_reason
    assert all(reason is None for reason in finish_reasons[:-1])
    # The usage chunk: no choices, the whole request's counts.
    assert last.choices == []
    assert last.usage is not None
    usage = last.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == native_usage(
        native
    )


def test_streamed_chat_completion_without_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=QWQ, messages=MESSAGES, max_tokens=4, temperature=0, stream=True
    )
    with stream:
        chunks = list(stream)

    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


@BOTH
def test_text_completion_is_the_raw_prompt(
    sdk: openai.OpenAI, api: httpx.Client, model: str
) -> None:
    completion = sdk.completions.create(
        model=model, prompt="Once upon a time", max_tokens=MAX_TOKENS, temperature=0
    )

    assert completion.object == "text_completion"
    assert completion.model == model
    [choice] = completion.choices
    assert choice.finish_reason in ("stop", "length")
    native = native_result(
        api,
        model,
        {"prompt": "Once upon a time", "raw": True, "max_tokens": MAX_TOKENS, "temperature": 0},
    )
    assert choice.text == native["response"]
    assert completion.usage is not None
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == native_usage(
        native
    )


def test_models_list(sdk: openai.OpenAI) -> None:
    models = list(sdk.models.list())

    assert sorted(model.id for model in models) == sorted([QWQ, R1])
    assert {model.object for model in models} == {"model"}
    assert {model.id: model.owned_by for model in models} == {QWQ: "qwen", R1: "deepseek-ai"}
    assert all(isinstance(model.created, int) for model in models)


def test_chat_completion_through_the_ai_gateway_url(server: RunningServer) -> None:
    base_url = server.url(f"/v1/{ACCOUNT}/my-gateway/workers-ai/v1")
    with openai.OpenAI(base_url=base_url, api_key=TOKEN) as client:
        completion = client.chat.completions.create(
            model=R1, messages=MESSAGES, max_tokens=4, temperature=0
        )

    assert completion.model == R1
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 4


def test_out_of_range_temperature_is_the_sdk_bad_request_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=QWQ, messages=MESSAGES, max_tokens=4, temperature=7)

    error = raised.value
    assert error.status_code == 400
    # What the SDK exposes: the whole Cloudflare envelope as `body`; no OpenAI `error` object.
    assert error.body == {
        "result": None,
        "success": False,
        "errors": [
            {"code": 5006, "message": "AiError: Bad input: Error: '/temperature' must be <= 5.0"}
        ],
        "messages": [],
    }
    assert error.message.startswith("Error code: 400")
    assert (error.code, error.type, error.param) == (None, None, None)


def test_unknown_model_is_the_sdk_bad_request_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="@cf/meta/no-such-model", messages=MESSAGES)

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["errors"] == [
        {"code": 5007, "message": "No such model @cf/meta/no-such-model or task"}
    ]


def test_bad_token_is_the_sdk_authentication_error(server: RunningServer) -> None:
    base_url = server.url(f"/client/v4/accounts/{ACCOUNT}/ai/v1")
    with (
        openai.OpenAI(base_url=base_url, api_key="not-the-token") as client,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        client.models.list()

    assert raised.value.status_code == 401
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["errors"] == [{"code": 10000, "message": "Authentication error"}]
