"""`POST .../ai/run/{model}` over the fake engine: envelopes, parameters, templates."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url
from tests.support.fake_engine import FakeEngine


def post(client: TestClient, model: str, body: Any, **kwargs: Any) -> Any:
    return client.post(run_url(model), json=body, headers=AUTH, **kwargs)


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
@pytest.mark.parametrize(
    "body",
    [{"prompt": "Hi"}, {"messages": [{"role": "user", "content": "Hi"}]}],
    ids=["prompt", "messages"],
)
def test_success_envelope(client: TestClient, model: str, body: dict[str, Any]) -> None:
    response = post(client, model, body)

    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["messages"] == []
    result = payload["result"]
    assert result["response"] == "Hello, world."
    assert result["tool_calls"] == []
    assert result["usage"]["completion_tokens"] == 4
    assert result["usage"]["total_tokens"] == (
        result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    )


def test_usage_counts_prompt_tokens_of_the_rendered_template(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    response = post(client, QWQ, {"prompt": "Hi"})

    rendered = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert engines[QWQ].calls[0].prompt_token_ids == engines[QWQ].encode(rendered)
    assert response.json()["result"]["usage"]["prompt_tokens"] == len(rendered)


def test_r1_prompt_is_rendered_with_its_own_template(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    post(
        client,
        R1,
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ]
        },
    )

    rendered = "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜><think>\n"
    assert engines[R1].calls[0].prompt_token_ids == engines[R1].encode(rendered)


def test_raw_prompt_is_sent_untemplated(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    post(client, QWQ, {"prompt": "<|im_start|>custom", "raw": True})

    assert engines[QWQ].calls[0].prompt_token_ids == engines[QWQ].encode("<|im_start|>custom")


def test_text_parts_are_joined(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    content = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    post(client, QWQ, {"messages": [{"role": "user", "content": content}]})

    sent = "".join(chr(token) for token in engines[QWQ].calls[0].prompt_token_ids)
    assert "<|im_start|>user\none\ntwo<|im_end|>" in sent


@pytest.mark.parametrize(("model", "temperature"), [(QWQ, 0.15), (R1, 0.6)], ids=["qwq", "r1"])
def test_defaults_of_each_model_page(
    client: TestClient, engines: dict[str, FakeEngine], model: str, temperature: float
) -> None:
    post(client, model, {"prompt": "Hi"})

    params = engines[model].calls[0].params
    assert params.max_tokens == 256
    assert params.temperature == temperature
    assert (params.top_p, params.top_k, params.seed) == (None, None, None)


def test_every_sampling_parameter_reaches_the_engine(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    body = {
        "prompt": "Hi",
        "max_tokens": 7,
        "temperature": 4.5,
        "top_p": 0.5,
        "top_k": 12,
        "seed": 9999999999,
        "repetition_penalty": 1.3,
        "frequency_penalty": -1.5,
        "presence_penalty": 2,
    }
    post(client, R1, body)

    params = engines[R1].calls[0].params
    assert params.max_tokens == 7
    assert params.temperature == 4.5
    assert params.top_p == 0.5
    assert params.top_k == 12
    assert params.seed == 9999999999
    assert params.repetition_penalty == 1.3
    assert params.frequency_penalty == -1.5
    assert params.presence_penalty == 2


def test_max_tokens_limits_the_output(client: TestClient) -> None:
    response = post(client, QWQ, {"prompt": "Hi", "max_tokens": 2})

    assert response.json()["result"]["response"] == "Hello,"
    assert response.json()["result"]["usage"]["completion_tokens"] == 2


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    response = post(client, QWQ, {"prompt": "Hi", "not_a_field": {"x": 1}})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/client/v4/accounts/acct/ai/run/%40cf/qwen/qwq-32b",
        "/client/v4/accounts/acct/ai/run/%40cf%2Fqwen%2Fqwq-32b",
        "/accounts/acct/ai/run/@cf/qwen/qwq-32b",
    ],
    ids=["percent-at", "percent-slashes", "no-client-v4-prefix"],
)
def test_url_forms(client: TestClient, path: str) -> None:
    response = client.post(path, json={"prompt": "Hi"}, headers=AUTH)

    assert response.status_code == 200
    assert response.json()["result"]["response"] == "Hello, world."


def test_stand_in_header(make_client: ClientFactory) -> None:
    from engine.config import EngineConfig
    from server.settings import ModelSettings

    stand_in = ModelSettings(
        name=QWQ,
        engine=EngineConfig(builtin="smollm2-135m-instruct", max_model_len=8192),
        chat_template="checkpoint",
        stand_in="SmolLM2-135M-Instruct",
    )
    client = make_client(models=[stand_in])

    response = post(client, QWQ, {"prompt": "Hi"})

    assert response.headers["X-Workers-AI-Local-Stand-In"] == "SmolLM2-135M-Instruct"
    assert response.headers["X-Request-Id"]


def test_checkpoint_template_is_used_for_stand_ins(
    make_client: ClientFactory, engines: dict[str, FakeEngine]
) -> None:
    from engine.config import EngineConfig
    from server.settings import ModelSettings

    stand_in = ModelSettings(
        name=QWQ,
        engine=EngineConfig(builtin="smollm2-135m-instruct", max_model_len=8192),
        chat_template="checkpoint",
    )
    client = make_client(models=[stand_in])

    post(client, QWQ, {"prompt": "Hi"})

    assert engines[QWQ].calls[0].prompt_token_ids == engines[QWQ].encode("<user>Hi<assistant>")


def test_context_window_is_the_smaller_of_workers_ai_and_engine(
    make_client: ClientFactory,
) -> None:
    from engine.config import EngineConfig
    from server.settings import ModelSettings

    small = ModelSettings(name=R1, engine=EngineConfig(checkpoint="/models/r1", max_model_len=1000))
    client = make_client(models=[small])

    response = post(client, R1, {"prompt": "Hi", "max_tokens": 990})

    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == 5021
    assert "context window limit (1000)" in response.json()["errors"][0]["message"]
