"""A real Worker's `env.AI`, under real Miniflare and vitest-pool-workers, against the server.

The npm packages are the pinned ones (`tests.support.npm`), installed once into the cache. The
Worker (`tests/support/workers/ai/worker.js`) makes one `env.AI` call per request and answers
what it saw, the error it caught included. One Miniflare runs every call below; one vitest run
runs `binding.test.js` inside the Workers runtime. Both reach the session's server (which has an
API token) through the connection string `/binding/<token>/`, over plain HTTP.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from server.binding.protocol import connection_string
from tests.support.live import QWQ, R1
from tests.support.live_server import TOKEN, RunningServer
from tests.support.npm import installed
from tests.support.paths import REPO
from tests.support.sse import parse_events

pytestmark = pytest.mark.integration

WORKER = REPO / "tests" / "support" / "workers" / "ai"
NODE_TIMEOUT_S = 300

SHORT = {"max_tokens": 8, "seed": 1}
COLOR = {
    "type": "object",
    "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"}},
    "required": ["color", "ok"],
    "additionalProperties": False,
}
# name -> the Worker's request: {"model", "inputs", "options"} for run(), {"models"} for models().
CALLS: dict[str, dict[str, Any]] = {
    "prompt": {"model": QWQ, "inputs": {"prompt": "Hello", **SHORT}},
    "messages": {
        "model": R1,
        "inputs": {"messages": [{"role": "user", "content": "Hello"}], **SHORT},
    },
    "stream": {"model": QWQ, "inputs": {"prompt": "Hello", "stream": True, **SHORT}},
    "json-mode": {
        "model": R1,
        "inputs": {
            "prompt": "A color",
            "response_format": {"type": "json_schema", "json_schema": COLOR},
            "max_tokens": 64,
        },
    },
    "gateway": {
        "model": QWQ,
        "inputs": {"prompt": "Hello", **SHORT},
        "options": {"gateway": {"id": "my-gateway", "skipCache": True}},
    },
    "bad-input": {"model": QWQ, "inputs": {"prompt": "Hello", "temperature": 9}},
    "unknown-model": {"model": "@cf/meta/llama-3.1-8b-instruct", "inputs": {"prompt": "Hi"}},
    "models": {"models": {}},
    "models-search": {"models": {"search": "qwq", "per_page": 5}},
    "gateway-log": {"gatewayLog": ["my-gateway", "log-1"]},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Worker's folder, beside the pinned packages (which stay in the cache)."""
    folder = tmp_path_factory.mktemp("worker") / "ai"
    shutil.copytree(WORKER, folder)
    (folder / "node_modules").symlink_to(installed() / "node_modules")
    return folder


@pytest.fixture(scope="module")
def connection(server: RunningServer) -> str:
    return connection_string(server.base_url, TOKEN)


@pytest.fixture(scope="module")
def seen(project: Path, connection: str) -> dict[str, dict[str, Any]]:
    """What the Worker saw for each of CALLS, all made in one Miniflare."""
    calls = project / "calls.json"
    calls.write_text(json.dumps(CALLS))
    done = node(project, "node", "miniflare_calls.mjs", connection, str(calls))
    answers: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return answers


def node(project: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def ran(seen: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    answer = seen[name]
    assert answer["ok"] is True, answer
    return answer


@pytest.mark.parametrize("name", ["prompt", "messages", "gateway"])
def test_a_run_returns_the_result_object(seen: dict[str, dict[str, Any]], name: str) -> None:
    answer = ran(seen, name)

    assert answer["type"] == "object"  # not a stream: the content type was exactly JSON
    result = answer["value"]
    assert isinstance(result["response"], str)
    assert result["tool_calls"] == []
    assert result["usage"]["completion_tokens"] == SHORT["max_tokens"]


def test_a_stream_reaches_the_worker_as_workers_ai_sse(seen: dict[str, dict[str, Any]]) -> None:
    answer = ran(seen, "stream")

    assert answer["type"] == "stream"
    events, done = parse_events(answer["value"])
    assert done
    assert events[-1]["usage"]["completion_tokens"] == SHORT["max_tokens"]


def test_json_mode_returns_the_json_value(seen: dict[str, dict[str, Any]]) -> None:
    jsonschema.validate(ran(seen, "json-mode")["value"]["response"], COLOR)


def test_bad_input_throws_ai_error_5006(seen: dict[str, dict[str, Any]]) -> None:
    answer = seen["bad-input"]

    assert answer["ok"] is False
    assert answer["name"] == "AiError"
    assert answer["text"] == "AiError: 5006: Bad input: Error: '/temperature' must be <= 5.0"
    assert (answer["httpStatus"], answer["internalCode"]) == (400, 5006)


def test_an_unknown_model_throws_ai_error_5007(seen: dict[str, dict[str, Any]]) -> None:
    answer = seen["unknown-model"]

    assert answer["text"] == "AiError: 5007: No such model @cf/meta/llama-3.1-8b-instruct or task"


def test_what_only_cloudflare_serves_says_so(seen: dict[str, dict[str, Any]]) -> None:
    answer = seen["gateway-log"]

    assert answer["ok"] is False
    assert answer["name"] == "AiGatewayLogNotFound"  # workerd's class for any 404 of getLog()
    assert answer["message"].startswith("workers-ai-local serves env.AI.run() and env.AI.models()")
    assert answer["message"].endswith("is Cloudflare-only")


def test_last_request_id_is_the_servers_request_id(
    seen: dict[str, dict[str, Any]], server: RunningServer
) -> None:
    ids = [seen[name]["lastRequestId"] for name in ("prompt", "stream", "bad-input")]

    log = server.log.read_text(errors="replace")
    assert all(f"[{request_id}]: POST /binding/***/ " in log for request_id in ids), ids


def test_models_lists_the_served_catalog(seen: dict[str, dict[str, Any]]) -> None:
    assert sorted(model["name"] for model in ran(seen, "models")["value"]) == sorted([QWQ, R1])


def test_models_searches(seen: dict[str, dict[str, Any]]) -> None:
    assert [model["name"] for model in ran(seen, "models-search")["value"]] == [QWQ]


def test_the_token_never_reaches_the_servers_log(
    seen: dict[str, dict[str, Any]], server: RunningServer
) -> None:
    log = server.log.read_text(errors="replace")

    assert "/binding/" in log  # the calls were logged...
    assert TOKEN not in log  # ...their connection string's token never


def test_vitest_pool_workers_runs_env_ai(project: Path, connection: str) -> None:
    report = project / "report.json"

    node(
        project,
        "node_modules/.bin/vitest",
        "run",
        "--config",
        "vitest.config.mjs",
        "--reporter=default",
        "--reporter=json",
        f"--outputFile.json={report}",
        AI_CONNECTION_STRING=connection,
    )

    results = json.loads(report.read_text())
    passed = {
        test["title"]
        for file in results["testResults"]
        for test in file["assertionResults"]
        if test["status"] == "passed"
    }
    assert passed == {
        "runs a prompt",
        "runs messages",
        "streams",
        "answers JSON mode with the JSON value",
        "throws AiError 5006 on bad input",
        "lists the served models",
    }
