"""`make serve`'s profile: the SmolLM2 stand-in answers under both names, and says so."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.live_server import TOKEN, RunningServer, running_server
from tests.support.paths import REPO

MODELS = ["@cf/qwen/qwq-32b", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("demo") / "server.log"
    with running_server(REPO / "configs" / "cpu-demo.yaml", log) as server:
        yield server


@pytest.mark.parametrize("model", MODELS, ids=["qwq", "r1"])
def test_the_stand_in_knows_the_capital_of_france(demo: RunningServer, model: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 16,
    }

    response = httpx.post(
        demo.url(f"/client/v4/accounts/local/ai/run/{model}"),
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )

    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["result"]["response"]
    assert response.headers["X-Workers-AI-Local-Stand-In"] == "SmolLM2-135M-Instruct"


def test_the_log_says_a_stand_in_answers(demo: RunningServer) -> None:
    log = demo.log.read_text(errors="replace")

    assert "is answered by a STAND-IN model: SmolLM2-135M-Instruct" in log
