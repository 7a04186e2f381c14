"""The GPU deployment, checked without Docker or a GPU.

The Dockerfile and docker-compose.yml are linted and validated, their commands are parsed with the
real CLI, their health checks are matched against the real app's routes, and the GPU profiles are
checked against a memory budget computed from the models' architecture.
"""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from engine.config import EngineConfig
from server.app import create_app
from server.cli import build_parser
from server.generation.specs import MODELS
from server.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICE = "workers-ai-local"
HEALTH_PATH = "/health"

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"

# --- Memory model of QwQ-32B and DeepSeek-R1-Distill-Qwen-32B (both Qwen2.5-32B) ---------------
GIB = 1 << 30
PARAMS = 32.8e9
# embed_tokens and lm_head (untied, 152064 x 5120 each) stay in the activation dtype under fp8.
EMBEDDING_PARAMS = 2 * 152064 * 5120
# KV cache per token: layers x KV heads x head_dim x (K and V) x bytes = 256 KiB bf16, 128 KiB fp8.
LAYERS, KV_HEADS, HEAD_DIM = 64, 8, 128
HIDDEN, INTERMEDIATE, HEADS = 5120, 27648, 40
# LoRA: vLLM reserves `max_loras` slots of `max_lora_rank` on every linear layer at startup,
# A [rank, in] and B [out, rank] in the activation dtype. Inputs + outputs of one layer's 7:
Q, KV = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
LORA_FEATURES_PER_LAYER = (
    (HIDDEN + Q) + 2 * (HIDDEN + KV) + (Q + HIDDEN)  # q, k, v, o
    + 2 * (HIDDEN + INTERMEDIATE) + (INTERMEDIATE + HIDDEN)  # gate, up, down
)  # fmt: skip
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Activations, sampler and CUDA graphs: vLLM measures them in its profiling run; an estimate.
RUNTIME_RESERVE_GIB = 4.0
# Memory the GPUs report (nvidia-smi): H100/A100 80GB 81559 MiB or more, H200 143771 MiB.
PROFILE_GPU_GIB = {
    "gpu-2x80gb.yaml": 81559 / 1024,
    "gpu-1x141gb-fp8.yaml": 143771 / 1024,
}
# Two engines sharing one GPU must leave room for each engine's CUDA context.
SHARED_GPU_MAX_UTILIZATION = 0.95
# Reasoning traces run 10-30k tokens: a window cut below Workers AI's must keep at least this.
REASONING_MIN_WINDOW = 32768


# --- Reading the Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: PurePosixPath


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]

    @classmethod
    def parse(cls, text: str) -> "Dockerfile":
        instructions: list[Instruction] = []
        pending = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            keyword, _, arguments = (pending + line).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
            pending = ""
        return cls(tuple(instructions))

    def all(self, keyword: str) -> list[str]:
        return [item.arguments for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> str:
        """The instruction that takes effect (Docker keeps the last ENTRYPOINT, CMD, ...)."""
        found = self.all(keyword)
        assert found, f"the Dockerfile has no {keyword}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        value = json.loads(self.last(keyword))
        assert isinstance(value, list), f"{keyword} is not in JSON (exec) form"
        return [str(item) for item in value]

    def env(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                variables[name] = value
        return variables

    def copies(self) -> list[Copy]:
        workdir = PurePosixPath("/")
        found: list[Copy] = []
        for item in self.instructions:
            if item.keyword == "WORKDIR":
                workdir = workdir / item.arguments
            elif item.keyword == "COPY":
                *sources, destination = shlex.split(item.arguments)
                assert not any(s.startswith("--") for s in sources), "COPY flags are not handled"
                found.append(Copy(tuple(sources), workdir / destination))
        return found

    def workdir(self) -> PurePosixPath:
        return PurePosixPath(self.last("WORKDIR"))

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK options and its exec-form command."""
        options_text, separator, command = self.last("HEALTHCHECK").partition(" CMD ")
        assert separator, "HEALTHCHECK has no CMD"
        options = dict(option.removeprefix("--").split("=", 1) for option in options_text.split())
        value = json.loads(command)
        assert isinstance(value, list), "HEALTHCHECK CMD is not in JSON (exec) form"
        return options, [str(item) for item in value]


@cache
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE.read_text(encoding="utf-8"))


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service() -> dict[str, Any]:
    found = compose()["services"][SERVICE]
    assert isinstance(found, dict)
    return found


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def repo_path(image_path: PurePosixPath) -> Path:
    """The file in this repository that the image has at `image_path`."""
    for copy in dockerfile().copies():
        for source in copy.sources:
            if (REPO / source).is_dir():
                if image_path.is_relative_to(copy.destination):
                    return REPO / source / image_path.relative_to(copy.destination)
            elif image_path == copy.destination / PurePosixPath(source).name:
                return REPO / source
    raise AssertionError(f"{image_path} is not copied into the image")


# --- The command the container runs: the Dockerfile's CMD, or compose's `command` ----------------

SOURCES = ["dockerfile", "compose"]


def serve_command(source: str) -> list[str]:
    if source == "dockerfile":
        return dockerfile().exec_form("CMD")
    command = service().get("command")
    if command is None:  # compose falls back to the image's CMD
        return dockerfile().exec_form("CMD")
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def healthcheck_command(source: str) -> list[str]:
    if source == "dockerfile":
        return dockerfile().healthcheck()[1]
    test = service()["healthcheck"]["test"]
    assert isinstance(test, list), "write the compose healthcheck in list form"
    assert test[0] == "CMD"
    return [str(arg) for arg in test[1:]]


def healthcheck_start_period(source: str) -> str:
    if source == "dockerfile":
        return dockerfile().healthcheck()[0]["start-period"]
    return str(service()["healthcheck"]["start_period"])


def healthcheck_url(source: str) -> str:
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(healthcheck_command(source)))
    assert len(urls) == 1, f"expected one URL in the health check, found {urls}"
    return str(urls[0])


def seconds(duration: str) -> int:
    """A Docker duration such as 1800s, 30m or 1h30m."""
    assert duration, "empty duration"
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts, f"cannot read the duration {duration!r}"
    hours, minutes, secs = (int(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + secs


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the profiles as they are written, whatever the developer's shell exports."""
    for name in ("HOST", "PORT", "API_TOKENS", "ACCOUNT_IDS", "REQUEST_TIMEOUT_S", "CACHE_DIR"):
        monkeypatch.delenv(f"WORKERS_AI_LOCAL_{name}", raising=False)


def command_settings(source: str) -> Settings:
    args = build_parser().parse_args(serve_command(source))
    return load_settings(repo_path(dockerfile().workdir() / args.config))


# --- Linters ------------------------------------------------------------------------------------


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / name
    if not executable.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[dev]'")
    return subprocess.run(
        [str(executable), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_dockerfile_passes_hadolint() -> None:
    result = run_tool("hadolint", "--no-color", DOCKERFILE.name)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_compose_file_matches_the_compose_spec() -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE.name)
    assert result.returncode == 0, result.stdout + result.stderr


# --- The image ----------------------------------------------------------------------------------


def test_base_image_is_the_vllm_release_the_gpu_extra_pins() -> None:
    (pin,) = [
        dep for dep in pyproject()["project"]["optional-dependencies"]["gpu"] if "vllm" in dep
    ]
    version = pin.removeprefix("vllm==")
    assert dockerfile().last("FROM") == f"vllm/vllm-openai:v{version}"


def pip_installs() -> list[list[str]]:
    """The arguments of every `pip install` in the Dockerfile's RUN instructions."""
    found: list[list[str]] = []
    for run in dockerfile().all("RUN"):
        lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        step: list[str] = []
        for token in [*lexer, ";"]:
            if token not in ("&&", "||", ";", "|"):
                step.append(token)
                continue
            found.extend(
                step[index + 2 :]
                for index in range(len(step) - 1)
                if step[index : index + 2] == ["pip", "install"]
            )
            step = []
    return found


def test_image_installs_the_project_without_extras() -> None:
    assert [args[-1] for args in pip_installs()] == ["."]


def test_image_installs_no_engine_package_over_the_base() -> None:
    # `.[gpu]` would be vllm again; torch and vllm of any build come from the base image only.
    packages = [arg for args in pip_installs() for arg in args if not arg.startswith("-")]
    assert [arg for arg in packages if "[" in arg or re.match(r"vllm|torch", arg)] == []


def test_copied_sources_exist() -> None:
    missing = [
        source
        for copy in dockerfile().copies()
        for source in copy.sources
        if not (REPO / source).exists()
    ]
    assert missing == []


def test_copied_sources_are_not_dockerignored() -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    ignored = [
        (source, pattern)
        for copy in dockerfile().copies()
        for source in copy.sources
        for pattern in patterns
        if fnmatch(source.rstrip("/"), pattern)
    ]
    assert ignored == []


@pytest.mark.parametrize("path", [".git", ".venv", "tests", ".env", ".mypy_cache"])
def test_local_state_is_dockerignored(path: str) -> None:
    patterns = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert path in patterns


def test_entrypoint_is_the_project_console_script() -> None:
    scripts = pyproject()["project"]["scripts"]
    assert scripts == {"workers-ai-local": "server.cli:main"}
    assert dockerfile().exec_form("ENTRYPOINT") == ["workers-ai-local"]


# --- The command: Dockerfile CMD and compose `command` ------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_command_parses_as_serve_on_all_interfaces(source: str) -> None:
    args = build_parser().parse_args(serve_command(source))
    assert (args.command, args.host) == ("serve", "0.0.0.0")


@pytest.mark.parametrize("source", SOURCES)
def test_command_config_is_a_gpu_profile_that_loads(source: str) -> None:
    settings = command_settings(source)
    assert all(model.engine.checkpoint and not model.stand_in for model in settings.models)


@pytest.mark.parametrize("source", SOURCES)
def test_command_port_is_exposed(source: str) -> None:
    port = build_parser().parse_args(serve_command(source)).port
    assert str(port) in dockerfile().last("EXPOSE").split()


def test_compose_publishes_the_served_port() -> None:
    port = build_parser().parse_args(serve_command("compose")).port
    container_ports = [str(mapping).rsplit(":", 1)[-1] for mapping in service()["ports"]]
    assert container_ports == [str(port)]


# --- Health checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_requests_the_health_path_on_loopback(source: str) -> None:
    url = urlsplit(healthcheck_url(source))
    assert (url.hostname, url.path) == ("127.0.0.1", HEALTH_PATH)


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_path_is_a_route_of_the_app(source: str) -> None:
    app = create_app(command_settings(source), engines={})
    paths = [getattr(route, "path", None) for route in app.routes]
    assert urlsplit(healthcheck_url(source)).path in paths


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_port_is_the_served_port(source: str) -> None:
    port = build_parser().parse_args(serve_command(source)).port
    assert urlsplit(healthcheck_url(source)).port == port


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_uses_python_not_curl(source: str) -> None:
    # The base image is not guaranteed to ship curl; it always has the Python that runs vLLM.
    assert healthcheck_command(source)[:2] == ["python3", "-c"]


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_waits_for_32b_weights_to_load(source: str) -> None:
    assert seconds(healthcheck_start_period(source)) >= 15 * 60


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_reserves_all_nvidia_gpus() -> None:
    devices = service()["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_compose_shares_host_ipc_for_vllm_workers() -> None:
    assert service().get("ipc") == "host" or "shm_size" in service()


@pytest.mark.parametrize("variable", ["HF_HOME", "VLLM_CACHE_ROOT"])
def test_compose_keeps_image_cache_on_a_named_volume(variable: str) -> None:
    mounts: dict[str, str] = {}
    for volume in service().get("volumes", []):
        source, target = str(volume).split(":")[:2]
        mounts[target] = source
    assert mounts.get(dockerfile().env()[variable]) in compose()["volumes"]


def test_compose_refuses_to_start_without_an_api_token() -> None:
    value = service()["environment"]["WORKERS_AI_LOCAL_API_TOKENS"]
    assert re.fullmatch(r"\$\{WORKERS_AI_LOCAL_API_TOKENS:\?.+\}", value)


def test_compose_image_tag_is_the_project_version() -> None:
    assert service()["image"] == f"{SERVICE}:{pyproject()['project']['version']}"


# --- GPU profiles -------------------------------------------------------------------------------

PROFILES = sorted(PROFILE_GPU_GIB)


def profile(name: str) -> Settings:
    return load_settings(REPO / "configs" / name)


def engine_of(settings: Settings, model: str) -> EngineConfig:
    (engine,) = [served.engine for served in settings.models if served.name == model]
    return engine


@pytest.mark.parametrize("name", PROFILES)
def test_profile_serves_both_models_from_real_checkpoints(name: str) -> None:
    checkpoints = {model.name: model.engine.checkpoint for model in profile(name).models}
    assert checkpoints == {QWQ: "Qwen/QwQ-32B", R1: "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_binds_loopback_unless_the_command_says_otherwise(name: str) -> None:
    assert profile(name).loopback_only


@pytest.mark.parametrize("name", PROFILES)
def test_profile_serves_qwq_full_window(name: str) -> None:
    assert engine_of(profile(name), QWQ).max_model_len == MODELS[QWQ].context_window == 24000


@pytest.mark.parametrize("name", PROFILES)
def test_profile_windows_stay_within_workers_ai_and_leave_room_to_reason(name: str) -> None:
    for model in profile(name).models:
        workers_ai = MODELS[model.name].context_window
        assert min(workers_ai, REASONING_MIN_WINDOW) <= model.engine.max_model_len <= workers_ai


def test_fp8_profile_serves_r1_full_window() -> None:
    assert engine_of(profile("gpu-1x141gb-fp8.yaml"), R1).max_model_len == 80000


def test_2x80gb_profile_puts_each_model_on_its_own_gpu() -> None:
    settings = profile("gpu-2x80gb.yaml")
    gpus = [engine_of(settings, model).gpu_ids for model in (QWQ, R1)]
    assert gpus == [[0], [1]]


def test_fp8_profile_shares_gpu_0_within_its_memory() -> None:
    engines = [model.engine for model in profile("gpu-1x141gb-fp8.yaml").models]
    assert [engine.gpu_ids for engine in engines] == [[0], [0]]
    assert sum(engine.gpu_memory_utilization for engine in engines) <= SHARED_GPU_MAX_UTILIZATION


def weight_gib(engine: EngineConfig) -> float:
    activation_bytes = DTYPE_BYTES[engine.dtype]
    if engine.quantization is None:
        return PARAMS * activation_bytes / GIB
    if engine.quantization == "fp8":
        return ((PARAMS - EMBEDDING_PARAMS) * 1 + EMBEDDING_PARAMS * activation_bytes) / GIB
    pytest.fail(f"no memory model for quantization {engine.quantization!r}: add one here")


def lora_gib(engine: EngineConfig) -> float:
    if not engine.enable_lora:
        return 0.0
    slots = engine.max_loras * engine.max_lora_rank * LAYERS * LORA_FEATURES_PER_LAYER
    return slots * DTYPE_BYTES[engine.dtype] / GIB


def kv_gib(engine: EngineConfig) -> float:
    element = 1 if engine.kv_cache_dtype == "fp8" else DTYPE_BYTES[engine.dtype]
    return engine.max_model_len * LAYERS * KV_HEADS * HEAD_DIM * 2 * element / GIB


@pytest.mark.parametrize(
    ("name", "model"),
    [(name, model) for name in PROFILES for model in (QWQ, R1)],
    ids=[
        f"{name.removesuffix('.yaml')}-{model.rsplit('/', 1)[-1]}"
        for name in PROFILES
        for model in (QWQ, R1)
    ],
)
def test_one_full_length_sequence_fits_in_the_kv_cache(name: str, model: str) -> None:
    engine = engine_of(profile(name), model)
    assert engine.tensor_parallel_size == 1, "the budget below is for one GPU per engine"
    budget = engine.gpu_memory_utilization * PROFILE_GPU_GIB[name]
    free_for_kv = budget - weight_gib(engine) - RUNTIME_RESERVE_GIB - lora_gib(engine)
    assert kv_gib(engine) <= free_for_kv, (
        f"{model}: {engine.max_model_len} tokens need {kv_gib(engine):.1f} GiB of KV cache; "
        f"{budget:.1f} GiB - {weight_gib(engine):.1f} GiB weights - {RUNTIME_RESERVE_GIB} GiB "
        f"runtime - {lora_gib(engine):.1f} GiB LoRA slots leaves {free_for_kv:.1f} GiB"
    )


def test_lora_slots_of_the_gpu_profiles_take_1_gib() -> None:
    # 2 slots x rank 32 x 64 layers x 131072 x 2 bytes, as the profiles' comments say.
    assert LORA_FEATURES_PER_LAYER == 131072
    for name in PROFILES:
        for model in profile(name).models:
            assert lora_gib(model.engine) == 1.0
