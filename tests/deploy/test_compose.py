"""docker-compose.yml, checked without Docker: valid under the compose spec, and the service
publishes the served port, reserves the GPUs, keeps caches on volumes and demands a token; its
profile variable selects every GPU profile, each within the GPUs and stop timeout it gets."""

import re
from pathlib import Path

import pytest

from server.http.draining_server import SHUTDOWN_MARGIN_S
from server.settings import load_settings
from tests.support.deploy import (
    COMPOSE,
    PROFILE_VARIABLE,
    SERVICE,
    compose,
    config_path,
    dockerfile,
    pyproject,
    run_tool,
    seconds,
    serve_command,
    served_port,
    service,
)
from tests.support.paths import CONFIGS


def test_compose_file_matches_the_compose_spec() -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_publishes_the_served_port() -> None:
    container_ports = [str(mapping).rsplit(":", 1)[-1] for mapping in service()["ports"]]
    assert container_ports == [str(served_port("compose"))]


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


# --- The profile: WORKERS_AI_LOCAL_PROFILE picks a configs/gpu-*.yaml -----------------------------

GPU_PROFILES = sorted(CONFIGS.glob("gpu-*.yaml"))


def test_compose_default_profile_is_the_images_default() -> None:
    assert config_path(serve_command("compose")) == config_path(serve_command("dockerfile"))


def test_compose_profile_variable_replaces_only_the_config() -> None:
    chosen = serve_command("compose", {PROFILE_VARIABLE: "gpu-1x141gb-fp8"})
    default = serve_command("compose")
    changed = [(a, b) for a, b in zip(default, chosen, strict=True) if a != b]

    assert [b for _, b in changed] == ["/app/configs/gpu-1x141gb-fp8.yaml"]


@pytest.mark.parametrize("profile", GPU_PROFILES, ids=[path.stem for path in GPU_PROFILES])
def test_every_gpu_profile_is_selectable_by_name(profile: Path) -> None:
    argv = serve_command("compose", {PROFILE_VARIABLE: profile.stem})

    assert config_path(argv) == profile
    settings = load_settings(profile)
    assert all(model.local_engine.checkpoint for model in settings.models)


@pytest.mark.parametrize("profile", GPU_PROFILES, ids=[path.stem for path in GPU_PROFILES])
def test_every_gpu_profile_uses_only_the_gpus_its_name_promises(profile: Path) -> None:
    # compose shows the container every GPU; a profile's gpu_ids pick among them, so a profile
    # named gpu-<N>x... must not count on more than N.
    promised = re.match(r"gpu-(\d+)x", profile.stem)
    assert promised, f"{profile.name}: name it gpu-<number of GPUs>x<memory>..."
    used = {
        gpu
        for model in load_settings(profile).models
        for gpu in (model.local_engine.gpu_ids or range(model.local_engine.tensor_parallel_size))
    }
    assert used <= set(range(int(promised.group(1))))


@pytest.mark.parametrize("profile", GPU_PROFILES, ids=[path.stem for path in GPU_PROFILES])
def test_compose_waits_for_every_profiles_drain(profile: Path) -> None:
    settings = load_settings(profile)

    assert settings.drain_timeout_s + SHUTDOWN_MARGIN_S <= seconds(service()["stop_grace_period"])
