"""deploy/compose-scale.yml, checked without Docker: valid under the compose spec; the vLLM
replicas' and the routers' commands parsed by vLLM's and vllm-router's own parsers; and each
model's chain (gateway profile -> router -> replicas) agreeing on what the gateway counts on:
names, windows, grammar settings, queue limits and the LoRA folders on the shared volume."""

import argparse
import importlib.metadata
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine.remote.config import RemoteConfig
from server.cli import build_parser
from server.http.draining_server import SHUTDOWN_MARGIN_S
from server.settings import Settings, load_settings
from server.workers import check_workers
from tests.support.app import QWQ, R1
from tests.support.deploy import (
    COMPOSE_SCALE,
    SERVICE,
    command,
    compose,
    config_path,
    dockerfile,
    pyproject,
    run_tool,
    seconds,
    service,
    vllm_router_args,
    vllm_serve_args,
)
from tests.support.paths import CONFIGS, REPO

# Importing vLLM (for its argument parser) warns about torch and vLLM deprecations.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

ROUTER_DOCKERFILE = REPO / "deploy" / "router" / "Dockerfile"
MODELS = [QWQ, R1]


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose(COMPOSE_SCALE)["services"]
    return found


def gateway() -> dict[str, Any]:
    return service(SERVICE, COMPOSE_SCALE)


@cache
def gateway_settings() -> Settings:
    return load_settings(config_path(command(gateway())))


def remote(model: str) -> RemoteConfig:
    (found,) = [served.remote for served in gateway_settings().models if served.name == model]
    assert found is not None, f"{model} has no remote engine in the gateway profile"
    return found


def is_replica(found: dict[str, Any]) -> bool:
    return found.get("entrypoint") == ["vllm", "serve"]


@dataclass(frozen=True)
class Replica:
    name: str
    service: dict[str, Any]
    args: argparse.Namespace

    @property
    def environment(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.service.get("environment", {}).items()}


@dataclass(frozen=True)
class Chain:
    """One model: the router the profile names and the replicas behind it."""

    router_name: str
    router: Any  # vllm_router's RouterArgs
    replicas: tuple[Replica, ...]


@cache
def replica(name: str) -> Replica:
    found = services()[name]
    assert is_replica(found), f"{name} does not run `vllm serve`"
    return Replica(name, found, vllm_serve_args(command(found)))


@cache
def chain(model: str) -> Chain:
    url = urlsplit(remote(model).url)
    assert url.hostname in services(), f"{remote(model).url}: no service {url.hostname}"
    router = vllm_router_args(command(services()[url.hostname]))
    workers = tuple(replica(str(urlsplit(worker).hostname)) for worker in router.worker_urls)
    return Chain(url.hostname, router, workers)


def mounts(found: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (named volume or host path, read-only)."""
    result: dict[str, tuple[str, bool]] = {}
    for volume in found.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        result[target] = (source, mode == ["ro"])
    return result


def volume_holding(found: dict[str, Any], path: str) -> tuple[str, str, bool]:
    """(volume, mount point, read-only) of the mount that `path` is on."""
    holding = [
        (source, target, read_only)
        for target, (source, read_only) in mounts(found).items()
        if path == target or path.startswith(target.rstrip("/") + "/")
    ]
    assert holding, f"{path} is on no volume of this service"
    return max(holding, key=lambda mount: len(mount[1]))


def healthcheck_port(found: dict[str, Any]) -> int | None:
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(map(str, found["healthcheck"]["test"])))
    assert len(urls) == 1, f"expected one URL in the health check, found {urls}"
    return urlsplit(str(urls[0])).port


# --- The file and the gateway ---------------------------------------------------------------------


def test_file_matches_the_compose_spec() -> None:
    result = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_SCALE)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gateway_serves_the_remote_profile_on_all_interfaces() -> None:
    args = build_parser().parse_args(command(gateway()))

    assert (args.command, args.host) == ("serve", "0.0.0.0")
    assert config_path(command(gateway())) == CONFIGS / "remote-compose.yaml"
    assert {model.name for model in gateway_settings().models} == set(MODELS)
    check_workers(gateway_settings(), args.workers)  # several processes: every engine remote


def test_gateway_is_the_projects_image_and_publishes_its_port() -> None:
    port = build_parser().parse_args(command(gateway())).port

    assert gateway()["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert gateway()["image"] == f"{SERVICE}:{pyproject()['project']['version']}"
    assert [str(mapping).rsplit(":", 1)[-1] for mapping in gateway()["ports"]] == [str(port)]
    assert healthcheck_port(gateway()) == port


def test_gateway_refuses_to_start_without_an_api_token() -> None:
    value = gateway()["environment"]["WORKERS_AI_LOCAL_API_TOKENS"]
    assert re.fullmatch(r"\$\{WORKERS_AI_LOCAL_API_TOKENS:\?.+\}", value)


def test_gateway_reserves_no_gpu() -> None:
    assert "deploy" not in gateway()


def test_gateway_waits_for_its_drain() -> None:
    needed = gateway_settings().drain_timeout_s + SHUTDOWN_MARGIN_S
    assert seconds(str(gateway()["stop_grace_period"])) == needed


def test_gateway_keeps_adapters_on_the_shared_volume() -> None:
    volume, _, read_only = volume_holding(gateway(), str(gateway_settings().adapters_dir))
    assert volume in compose(COMPOSE_SCALE)["volumes"]
    assert not read_only


# --- Each model: profile -> router -> replicas ----------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_profile_url_is_the_port_its_router_listens_on(model: str) -> None:
    router = chain(model).router

    assert (router.host, router.port) == ("0.0.0.0", urlsplit(remote(model).url).port)
    assert healthcheck_port(services()[chain(model).router_name]) == router.port


@pytest.mark.parametrize("model", MODELS)
def test_router_lists_every_replica_of_its_model_at_its_port(model: str) -> None:
    listed = {
        str(urlsplit(url).hostname): urlsplit(url).port for url in chain(model).router.worker_urls
    }
    of_model = {
        name
        for name, found in services().items()
        if is_replica(found) and replica(name).args.model_tag == remote(model).base_model
    }

    assert len(listed) >= 2, "show at least two replicas per model"
    assert set(listed) == of_model
    assert all(replica(name).args.port == port for name, port in listed.items())


@pytest.mark.parametrize("model", MODELS)
def test_replicas_serve_the_model_the_profile_asks_for(model: str) -> None:
    config = remote(model)
    for found in chain(model).replicas:
        assert found.args.served_model_name == [config.served_model_name], found.name
        # The LoRA resolver accepts an adapter whose base_model_name_or_path is this --model.
        assert found.args.model_tag == config.base_model, found.name
        assert config.tokenizer == found.args.model_tag, "tokenize with the replicas' checkpoint"


@pytest.mark.parametrize("model", MODELS)
def test_replicas_hold_the_profiles_window(model: str) -> None:
    window = remote(model).max_model_len
    assert window is not None, "name the window, so that this file can be checked"
    assert all(found.args.max_model_len >= window for found in chain(model).replicas)


@pytest.mark.parametrize("model", MODELS)
def test_replicas_grammars_match_the_in_process_engine(model: str) -> None:
    for found in chain(model).replicas:
        grammar = found.args.structured_outputs_config
        assert (grammar.backend, grammar.disable_any_whitespace) == ("guidance", True), found.name
        # With a reasoning parser, /v1/completions would hold a grammar back until </think>.
        assert not found.args.reasoning_parser or grammar.enable_in_reasoning, found.name


@pytest.mark.parametrize("model", MODELS)
def test_replicas_bound_their_queue(model: str) -> None:
    # A full replica answers 503, which the router retries elsewhere and the gateway maps to
    # Workers AI's 429 (3040) once every replica is full.
    for found in chain(model).replicas:
        assert found.args.max_num_queued_reqs is not None, found.name
        assert found.args.max_num_queued_reqs >= found.args.max_num_seqs, found.name


@pytest.mark.parametrize("model", MODELS)
def test_replicas_resolve_the_adapters_the_gateway_publishes(model: str) -> None:
    config = remote(model)
    assert config.enable_lora
    assert config.lora_dir is not None
    for found in chain(model).replicas:
        env = found.environment
        assert found.args.enable_lora, found.name
        assert found.args.max_lora_rank >= config.max_lora_rank, found.name
        assert env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
        assert env.get("VLLM_LORA_RESOLVER_CACHE_DIR") == str(config.lora_dir), found.name
        plugins = env.get("VLLM_PLUGINS")
        assert plugins is None or "lora_filesystem_resolver" in plugins.split(",")


@pytest.mark.parametrize("model", MODELS)
def test_lora_dir_is_the_same_folder_for_the_gateway_and_the_replicas(model: str) -> None:
    lora_dir = str(remote(model).lora_dir)
    volume, target, read_only = volume_holding(gateway(), lora_dir)

    assert not read_only, "the gateway publishes adapters there"
    for found in chain(model).replicas:
        assert volume_holding(found.service, lora_dir)[:2] == (volume, target), found.name


@pytest.mark.parametrize("model", MODELS)
def test_lora_dir_exists_before_a_replica_starts(model: str) -> None:
    # vLLM refuses to start when VLLM_LORA_RESOLVER_CACHE_DIR is not a directory.
    init = services()["adapters-init"]
    lora_dir = str(remote(model).lora_dir)

    assert init["entrypoint"][:2] == ["mkdir", "-p"]
    assert lora_dir in init["entrypoint"]
    assert volume_holding(init, lora_dir)[:2] == volume_holding(gateway(), lora_dir)[:2]
    for found in chain(model).replicas:
        condition = found.service["depends_on"]["adapters-init"]["condition"]
        assert condition == "service_completed_successfully", found.name


@pytest.mark.parametrize("model", MODELS)
def test_startup_waits_cover_a_replicas_first_start(model: str) -> None:
    first_start = max(
        seconds(str(found.service["healthcheck"]["start_period"]))
        for found in chain(model).replicas
    )
    assert chain(model).router.worker_startup_timeout_secs >= first_start
    assert remote(model).start_timeout_s >= first_start


# --- Replicas and routers ---------------------------------------------------------------------


def test_each_replica_has_a_gpu_of_its_own() -> None:
    gpus: list[str] = []
    for name, found in services().items():
        if not is_replica(found):
            continue
        (device,) = found["deploy"]["resources"]["reservations"]["devices"]
        assert (device["driver"], device.get("count")) == ("nvidia", None), name
        assert len(device["device_ids"]) == replica(name).args.tensor_parallel_size, name
        gpus.extend(device["device_ids"])
    assert len(gpus) == len(set(gpus)), f"GPUs given to two replicas: {gpus}"


def test_replicas_run_the_vllm_release_of_the_image_and_check_their_port() -> None:
    names = [name for name, found in services().items() if is_replica(found)]

    assert names
    assert {services()[name]["image"] for name in names} == {dockerfile().last("FROM")}
    assert all(healthcheck_port(services()[name]) == replica(name).args.port for name in names)


def test_routers_are_built_from_the_pinned_wheel_the_tests_parse_with() -> None:
    pins = re.findall(r"vllm-router==([\w.]+)", ROUTER_DOCKERFILE.read_text(encoding="utf-8"))
    routers = [found for found in services().values() if found.get("build") == "router"]

    assert pins == [importlib.metadata.version("vllm-router")]
    assert {found["image"] for found in routers} == {f"vllm-router:{pins[0]}"}
    assert {chain(model).router_name for model in MODELS} <= {
        name for name, found in services().items() if found.get("build") == "router"
    }


def test_router_dockerfile_passes_hadolint() -> None:
    result = run_tool("hadolint", "--no-color", str(ROUTER_DOCKERFILE.relative_to(REPO)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
