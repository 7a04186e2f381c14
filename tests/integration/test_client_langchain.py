"""`langchain_cloudflare.ChatCloudflareWorkersAI`, unchanged apart from its base URL.

`base_url` (alias `cloudflare_api_base`, env `BASE_URL`) replaces
`https://api.cloudflare.com/client/v4`; the model posts to `accounts/{id}/ai/run/{model}` by
default (`endpoint_format="workers_ai"`) or to `accounts/{id}/ai/v1/chat/completions`
(`"openai_compatible"`). It always sends `"stop": null` and turns temperature 0 into 1e-8.

Native mode: the AIMessage's content is `result.response` as is (reasoning, `</think>`, answer),
`usage_metadata` comes from `result.usage`; a stream yields one chunk per `response` event and
puts the final event's `usage` in `response_metadata["usage"]` (not in `usage_metadata`).
OpenAI-compatible mode: `reasoning_content` becomes a `thinking` content block before the
answer's `text` block; a stream reads `delta.content` only (reasoning deltas are dropped) and
never asks for usage.
"""

from collections.abc import Callable, Iterator
from functools import reduce
from operator import add
from typing import Any, Literal

import httpx
import pytest
from langchain_cloudflare import ChatCloudflareWorkersAI
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from tests.support.live_server import TOKEN, RunningServer

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
BOTH = pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
ACCOUNT = "acct"
MAX_TOKENS = 8
CONVERSATION = [
    SystemMessage("You are a friendly assistant"),
    HumanMessage("Why is pizza so good?"),
]
WIRE_MESSAGES = [
    {"role": "system", "content": "You are a friendly assistant"},
    {"role": "user", "content": "Why is pizza so good?"},
]

Format = Literal["workers_ai", "openai_compatible"]
MakeChat = Callable[..., ChatCloudflareWorkersAI]


@pytest.fixture
def chat(server: RunningServer) -> Iterator[MakeChat]:
    """Builds chat models on the server; closes the HTTP clients they open."""
    made: list[ChatCloudflareWorkersAI] = []

    def make(model: str, endpoint_format: Format = "workers_ai", **options: Any) -> Any:
        llm = ChatCloudflareWorkersAI(
            model=model,
            account_id=ACCOUNT,
            api_token=TOKEN,
            base_url=server.url("/client/v4"),
            endpoint_format=endpoint_format,
            temperature=0,
            max_tokens=MAX_TOKENS,
            **options,
        )
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm.client.close()


def native_result(api: httpx.Client, model: str) -> dict[str, Any]:
    body = {"messages": WIRE_MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    response = api.post(f"/client/v4/accounts/{ACCOUNT}/ai/run/{model}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def usage_metadata(result: dict[str, Any]) -> dict[str, int]:
    usage = result["usage"]
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }


def joined(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert chunks
    merged: AIMessageChunk = reduce(add, chunks)
    return merged


@BOTH
def test_invoke_native(chat: MakeChat, api: httpx.Client, model: str) -> None:
    message = chat(model).invoke(CONVERSATION)

    assert isinstance(message, AIMessage)
    native = native_result(api, model)
    assert message.content == native["response"]
    assert message.usage_metadata == usage_metadata(native)
    assert message.response_metadata["token_usage"] == native["usage"]
    assert message.response_metadata["model_name"] == model
    assert message.tool_calls == []


@BOTH
def test_stream_native(chat: MakeChat, api: httpx.Client, model: str) -> None:
    chunks = list(chat(model).stream(CONVERSATION))

    native = native_result(api, model)
    whole = joined(chunks)
    assert whole.content == native["response"]
    # The last `response` event's usage lands in the response metadata.
    assert whole.response_metadata["usage"] == native["usage"]
    assert whole.response_metadata["model_name"] == model


def test_invoke_native_with_ai_gateway_headers(chat: MakeChat, api: httpx.Client) -> None:
    """`ai_gateway` adds `cf-aig-gateway-id` (and other `cf-aig-*` headers) to the same URL."""
    llm = chat(R1, ai_gateway="my-gateway", aig_request_timeout=120_000, aig_max_attempts=1)
    message = llm.invoke(CONVERSATION)

    assert message.content == native_result(api, R1)["response"]


def openai_split(response: str) -> tuple[str, str]:
    reasoning, marker, answer = response.partition("</think>")
    return (reasoning, answer) if marker else (response, "")


@BOTH
def test_invoke_openai_compatible(chat: MakeChat, api: httpx.Client, model: str) -> None:
    message = chat(model, "openai_compatible").invoke(CONVERSATION)

    native = native_result(api, model)
    reasoning, answer = openai_split(native["response"])
    expected: Any = []
    if reasoning:
        expected.append({"type": "thinking", "thinking": reasoning})
    if answer:
        expected.append({"type": "text", "text": answer})
    if not reasoning:
        expected = answer
    assert message.content == expected
    assert message.usage_metadata == usage_metadata(native)
    assert message.response_metadata["model_name"] == model


@BOTH
def test_stream_openai_compatible(chat: MakeChat, api: httpx.Client, model: str) -> None:
    chunks = list(chat(model, "openai_compatible").stream(CONVERSATION))

    whole = joined(chunks)
    # Only `delta.content` is read: the answer after `</think>`, not the reasoning.
    assert whole.content == openai_split(native_result(api, model)["response"])[1]
    # The model name is read from the first chunk's `model`.
    assert whole.response_metadata["model_name"] == model
    assert chunks[0].response_metadata["model_name"] == model
