"""docker-compose.yml, checked without Docker: valid under the compose spec, and the service
publishes the served port, reserves the GPUs, keeps caches on volumes and demands a token."""

import re

import pytest

from tests.support.deploy import (
    COMPOSE,
    SERVICE,
    compose,
    dockerfile,
    pyproject,
    run_tool,
    served_port,
    service,
)


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
