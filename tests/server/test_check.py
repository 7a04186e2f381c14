"""`workers-ai-local check --config PATH`: what a profile would serve, and the settings that stop
it, named by path. Exit 0 when usable (warnings allowed), 1 otherwise.

Profiles are the shipped ones, or small ones written per test; remote upstreams for `--probe`
are a real HTTP server on a free port.
"""

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from server import cli
from tests.support.paths import CONFIGS

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
PROFILES = sorted(CONFIGS.glob("*.yaml"))
GPU_PROFILES = [path for path in PROFILES if path.stem.startswith("gpu-")]


def device_of(profile: Path) -> str:
    """The device a shipped profile is for: gpu-* profiles need GPUs, the others run on a CPU
    (remote ones run their engines elsewhere)."""
    return "gpu" if profile.stem.startswith("gpu-") else "cpu"


pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def engine(**settings: Any) -> dict[str, Any]:
    return {"builtin": "tiny-qwq-32b", "max_model_len": 4096, **settings}


def remote(**settings: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9", "served_model_name": "up", "tokenizer": "t", **settings}


def check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    models: list[dict[str, Any]],
    *flags: str,
    **top: Any,
) -> tuple[int, str]:
    """Run `check` on a profile of `models` (each `{"name":..., "engine" or "remote": ...}`);
    returns the exit code and what it printed (stdout, then stderr)."""
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"models": models, **top}), encoding="utf-8")
    code = cli.main(["check", "--config", str(profile), *flags])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "API_TOKENS", "CACHE_DIR", "ADAPTERS_DIR", "LOG_FORMAT"):
        monkeypatch.delenv(f"WORKERS_AI_LOCAL_{name}", raising=False)


@pytest.mark.parametrize("profile", PROFILES, ids=[path.stem for path in PROFILES])
def test_every_shipped_profile_is_usable_on_its_device(
    profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["check", "--config", str(profile), "--device", device_of(profile)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().splitlines()[-1] == "usable: 2 models, no errors, no warnings"


def test_the_output_shows_each_window_and_where_5021_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli.main(["check", "--config", str(CONFIGS / "gpu-2x80gb.yaml"), "--device", "gpu"])

    out = capsys.readouterr().out
    assert "  window        24000 tokens (Workers AI's full window)" in out
    assert "  window        32768 tokens (Workers AI: 80000; 5021 beyond 32768)" in out
    assert "  engine        in-process, checkpoint Qwen/QwQ-32B" in out
    assert "  memory        GPU 1, gpu_memory_utilization 0.95" in out


@pytest.mark.parametrize(
    ("device", "asleep", "method"),
    [("gpu", "asleep", "sleep, auto"), ("cpu", "stopped", "restart, auto")],
)
def test_the_output_shows_the_swap_group_and_who_starts_awake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str, asleep: str, method: str
) -> None:
    models = [
        {"name": QWQ, "engine": engine(gpu_ids=[0], gpu_memory_utilization=0.85)},
        {"name": R1, "engine": engine(gpu_ids=[0], gpu_memory_utilization=0.85)},
    ]
    swap = [{"name": "gpu0", "models": [QWQ, R1]}]

    code, out = check(tmp_path, capsys, models, "--device", device, swap_groups=swap)

    assert code == 0, out
    blocks = out.split("\n\n")
    assert f"  swap group    gpu0 ({method}): {asleep} at start" in blocks[1]
    assert f"  swap group    gpu0 ({method}): awake at start (listed last)" in blocks[2]


def test_models_with_identical_engine_settings_share_one_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = [{"name": QWQ, "engine": engine()}, {"name": R1, "engine": engine()}]

    code, out = check(tmp_path, capsys, models, "--device", "gpu")

    assert code == 0, out  # one engine on GPU 0, not two claiming 0.92 each
    assert f"  shared        one engine with {QWQ} (identical engine settings)" in out


@pytest.mark.parametrize(
    ("models", "swap_groups", "device", "where", "says"),
    [
        pytest.param(
            [{"name": QWQ, "engine": engine(vllm_args={"blok_size": 16})}],
            [],
            "cpu",
            "models[0].engine.vllm_args.blok_size",
            "did you mean block_size",
            id="vllm-args-unknown",
        ),
        pytest.param(
            [
                {"name": QWQ, "engine": engine()},
                {"name": R1, "engine": engine(vllm_args={"max_model_len": 8192})},
            ],
            [],
            "cpu",
            "models[1].engine.vllm_args.max_model_len",
            "use engine.max_model_len instead",
            id="vllm-args-owned",
        ),
        pytest.param(
            [
                {"name": QWQ, "engine": engine(gpu_ids=[0], gpu_memory_utilization=0.6)},
                {"name": R1, "engine": engine(builtin="tiny-deepseek-r1-distill-qwen-32b")},
            ],
            [],
            "gpu",
            "models[1].engine.gpu_memory_utilization",
            f"the engines on GPU 0 claim 1.52 of it ({QWQ} 0.6 + {R1} 0.92)",
            id="gpu-over-claimed",
        ),
        pytest.param(
            [{"name": QWQ, "engine": engine(gpu_ids=[1, 1], tensor_parallel_size=2)}],
            [],
            "gpu",
            "models[0].engine.gpu_ids",
            "must be distinct GPU numbers",
            id="gpu-ids-repeated",
        ),
        pytest.param(
            [
                {"name": QWQ, "engine": engine(gpu_ids=[0])},
                {"name": R1, "engine": engine(gpu_ids=[1])},
            ],
            [{"name": "pair", "models": [QWQ, R1]}],
            "gpu",
            "swap_groups[0].models",
            "members must use the same GPUs",
            id="swap-group-on-two-gpus",
        ),
        pytest.param(
            [{"name": QWQ, "engine": engine()}, {"name": R1, "engine": engine(seed=1)}],
            [{"name": "pair", "models": [QWQ, R1], "method": "sleep"}],
            "cpu",
            "swap_groups[0].method",
            "sleep mode needs a GPU",
            id="sleep-on-cpu",
        ),
        pytest.param(
            [{"name": QWQ, "remote": remote(url="http://:8000")}],
            [],
            "cpu",
            "models[0].remote.url",
            "names no host",
            id="remote-url-without-host",
        ),
        pytest.param(
            [{"name": QWQ, "remote": remote(url="http://upstream:80000")}],
            [],
            "cpu",
            "models[0].remote.url",
            "out of range",
            id="remote-url-bad-port",
        ),
    ],
)
def test_a_broken_profile_fails_naming_the_setting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    models: list[dict[str, Any]],
    swap_groups: list[dict[str, Any]],
    device: str,
    where: str,
    says: str,
) -> None:
    code, out = check(tmp_path, capsys, models, "--device", device, swap_groups=swap_groups)

    assert code == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"error: {where}: "), out
    assert says in errors[0]
    assert out.rstrip().splitlines()[-1].startswith("NOT usable: ")


def test_a_public_address_without_api_tokens_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = [{"name": QWQ, "engine": engine()}]

    code, out = check(tmp_path, capsys, models, "--device", "cpu", host="0.0.0.0")

    assert code == 1
    assert "error: host: refusing to listen on 0.0.0.0 without API tokens" in out


def test_settings_that_do_not_load_fail_with_the_loaders_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, capsys, [{"name": QWQ, "engine": engine(max_model_len=0)}])

    assert code == 1
    assert "models[0].engine.max_model_len" in out


def test_a_missing_api_key_variable_warns_but_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPSTREAM_KEY_FOR_TEST", raising=False)
    models = [{"name": QWQ, "remote": remote(api_key_env="UPSTREAM_KEY_FOR_TEST")}]

    code, out = check(tmp_path, capsys, models, "--device", "cpu")

    assert code == 0, out
    assert "warning: models[0].remote.api_key_env: UPSTREAM_KEY_FOR_TEST is not set" in out
    assert "  window        at most 24000 tokens: the upstream's max_model_len" in out


class Upstream(BaseHTTPRequestHandler):
    """/v1/models of a vLLM server serving "up" with a 16384-token window."""

    seen_authorization: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        Upstream.seen_authorization.append(self.headers.get("Authorization"))
        body = {"object": "list", "data": [{"id": "up", "max_model_len": 16384}]}
        payload = json.dumps(body).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Upstream.seen_authorization.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_probe_reads_the_upstream_window_with_the_api_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    upstream: str,
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY_FOR_TEST", "sekret")
    models = [{"name": QWQ, "remote": remote(url=upstream, api_key_env="UPSTREAM_KEY_FOR_TEST")}]

    code, out = check(tmp_path, capsys, models, "--probe")

    assert code == 0, out
    assert "  window        16384 tokens (Workers AI: 24000; 5021 beyond 16384)" in out
    assert Upstream.seen_authorization == ["Bearer sekret"]


@pytest.mark.parametrize(
    ("settings", "where", "says"),
    [
        pytest.param(
            {"served_model_name": "other"},
            "models[0].remote.served_model_name",
            "other is not served upstream (its models: up)",
            id="model-not-served",
        ),
        pytest.param(
            {"url": "http://127.0.0.1:9"}, "models[0].remote.url", "cannot connect", id="down"
        ),
    ],
)
def test_probe_fails_when_the_upstream_cannot_serve(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    upstream: str,
    settings: dict[str, Any],
    where: str,
    says: str,
) -> None:
    models = [{"name": QWQ, "remote": remote(url=upstream) | settings}]

    code, out = check(tmp_path, capsys, models, "--probe")

    assert code == 1, out
    assert f"error: {where}: " in out
    assert says in out


def test_probe_serves_the_upstreams_window_when_the_settings_ask_for_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], upstream: str
) -> None:
    models = [{"name": QWQ, "remote": remote(url=upstream, max_model_len=24000)}]

    code, out = check(tmp_path, capsys, models, "--probe")

    assert code == 0, out
    assert "warning: models[0].remote.max_model_len: 24000 is more than the upstream" in out
    assert "  window        16384 tokens (Workers AI: 24000; 5021 beyond 16384)" in out


def test_without_probe_no_upstream_is_called(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], upstream: str
) -> None:
    code, _ = check(tmp_path, capsys, [{"name": QWQ, "remote": remote(url=upstream)}])

    assert code == 0
    assert Upstream.seen_authorization == []


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`serve` replaces the root logger's handlers: give pytest's back afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    root.handlers = saved
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_serve_refuses_what_check_refuses_before_any_engine_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.app

    def no_app(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the app (and its engines) must not be built")

    monkeypatch.setattr(server.app, "create_app", no_app)
    models = [
        {"name": QWQ, "engine": engine()},
        {"name": R1, "engine": engine(vllm_args={"blok_size": 16})},
    ]
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")

    code = cli.main(["serve", "--config", str(profile)])

    assert code == 2
    err = capsys.readouterr().err
    assert "cannot serve this config" in err
    assert "models[1].engine.vllm_args.blok_size: not a vLLM engine argument" in err
