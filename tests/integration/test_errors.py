"""Error paths on the real server: every one a Cloudflare envelope, none a stack trace."""

from typing import Any

import httpx
import pytest

from tests.support.envelopes import assert_error
from tests.support.live import ENDLESS, QWQ, R1, run
from tests.support.live_server import RunningServer


def test_schema_violation(api: httpx.Client) -> None:
    assert_error(
        run(api, R1, prompt="Hi", top_p=1.5), 400, 5006, "AiError: Bad input: Error: '/top_p'"
    )


def test_unknown_model(api: httpx.Client) -> None:
    assert_error(
        run(api, "@cf/meta/llama-3.1-8b-instruct", prompt="Hi"), 400, 5007, "No such model"
    )


def test_unknown_path(api: httpx.Client) -> None:
    assert_error(api.post("/client/v4/accounts/acct/ai/runs"), 404, 7000, "No route for that URI")


def test_missing_token(server: RunningServer) -> None:
    response = httpx.post(server.url(f"/client/v4/accounts/a/ai/run/{QWQ}"), json={"prompt": "x"})

    assert_error(response, 401, 10000, "Authentication error")


def test_body_not_json(api: httpx.Client) -> None:
    response = api.post(f"/client/v4/accounts/a/ai/run/{QWQ}", content=b"prompt=hi")

    assert_error(response, 400, 5006, "not valid JSON")


@pytest.mark.parametrize(
    ("model", "max_tokens", "window"), [(QWQ, 24000, 24000), (R1, 80000, 80000)], ids=["qwq", "r1"]
)
def test_context_window(
    api: httpx.Client, tokenizers: dict[str, Any], model: str, max_tokens: int, window: int
) -> None:
    prompt_tokens = len(tokenizers[model].encode("Hello there", add_special_tokens=False))

    response = run(api, model, prompt="Hello there", raw=True, max_tokens=max_tokens)

    assert_error(
        response,
        413,
        5021,
        f"The estimated number of input and maximum output tokens ({prompt_tokens + max_tokens}) "
        f"exceeded this model context window limit ({window}).",
    )


def test_timeout_aborts_the_engine_request(api: httpx.Client) -> None:
    response = api.post(
        f"/client/v4/accounts/a/ai/run/{QWQ}",
        json={"prompt": "Hi", "max_tokens": 20000, "guided_json": ENDLESS},
        headers={"cf-aig-request-timeout": "500"},
    )

    assert_error(response, 408, 3007, "Request timeout")
    assert api.get("/health").json()["models"][QWQ]["running_requests"] == 0
