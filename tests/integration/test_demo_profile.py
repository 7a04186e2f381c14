"""`make serve`'s profile: the SmolLM2 stand-in answers under both names, and says so."""

import json
import re
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


def test_the_readmes_first_request_gets_the_answer_it_shows(demo: RunningServer) -> None:
    readme = (REPO / "README.md").read_text()
    try_it = readme.split("## Try it", 1)[1]
    command, shown = try_it.split("```sh", 1)[1].split("```json", 1)
    path = re.search(r"http://127\.0\.0\.1:8787(\S+)", command)
    body = re.search(r"-d '(.+?)'", command, re.DOTALL)
    assert path is not None
    assert body is not None

    response = httpx.post(
        demo.url(path.group(1)),
        content=body.group(1),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=120,
    )

    assert response.json() == json.loads(shown.split("```", 1)[0])
