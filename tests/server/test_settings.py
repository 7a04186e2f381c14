"""YAML profiles, environment overrides and the errors a user sees for a bad config."""

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings
from tests.support.paths import REPO

PROFILES = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=[path.stem for path in PROFILES])
def test_every_shipped_profile_loads(profile: Path) -> None:
    settings = load_settings(profile)

    assert {model.name for model in settings.models} == {
        "@cf/qwen/qwq-32b",
        "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    }


def test_cpu_tiny_serves_the_real_windows() -> None:
    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml")

    windows = {model.name: model.local_engine.max_model_len for model in settings.models}
    assert windows == {
        "@cf/qwen/qwq-32b": 24000,
        "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b": 80000,
    }


def test_environment_overrides_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_AI_LOCAL_API_TOKENS", "one, two ,three")
    monkeypatch.setenv("WORKERS_AI_LOCAL_PORT", "9999")

    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml")

    assert settings.api_tokens == ["one", "two", "three"]
    assert settings.port == 9999


def test_adapters_dir_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORKERS_AI_LOCAL_ADAPTERS_DIR", str(tmp_path))

    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml")

    assert settings.resolved_adapters_dir() == tmp_path


def test_adapters_dir_defaults_to_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERS_AI_LOCAL_ADAPTERS_DIR", raising=False)
    monkeypatch.setenv("WORKERS_AI_LOCAL_CACHE_DIR", "/srv/cache")

    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml")

    assert settings.resolved_adapters_dir() == Path("/srv/cache/adapters")


def test_cli_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_AI_LOCAL_PORT", "9999")

    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml", port=1234, host=None)

    assert settings.port == 1234
    assert settings.host == "127.0.0.1"


BAD_CONFIGS = [
    pytest.param("models: []", "models: List should have at least 1 item", id="no-models"),
    pytest.param(
        "models:\n  - name: '@cf/meta/llama'\n    engine: {checkpoint: x, max_model_len: 10}",
        "models[0].name: Value error, '@cf/meta/llama' is not a model this server can serve",
        id="unknown-model",
    ),
    pytest.param(
        "models:\n  - name: '@cf/qwen/qwq-32b'\n    engine: {max_model_len: 10}",
        "set exactly one of 'checkpoint'",
        id="no-checkpoint",
    ),
    pytest.param(
        "models:\n  - name: '@cf/qwen/qwq-32b'\n    engine: {checkpoint: x, max_model_len: 10, "
        "tensor_parallel_size: 2, gpu_ids: [0]}",
        "tensor_parallel_size is 2 but only 1 gpu_ids",
        id="tp-without-gpus",
    ),
    pytest.param(
        "models:\n  - name: '@cf/qwen/qwq-32b'\n    engine: {checkpoint: x, max_model_len: 10, "
        "colour: blue}",
        "models[0].engine.colour: Extra inputs are not permitted",
        id="typo",
    ),
    pytest.param("port: [", "is not valid YAML", id="bad-yaml"),
    pytest.param("- a\n- b", "must hold a mapping", id="not-a-mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_configs_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_settings(config)

    assert message in str(raised.value)
    assert str(config) in str(raised.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "absent.yaml")
