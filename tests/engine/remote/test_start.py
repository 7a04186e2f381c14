"""`RemoteEngine.start`: the tokenizer here, the model and its length from the upstream."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineStartError
from engine.remote.checkpoint import Checkpoint, load_checkpoint
from engine.remote.engine import RemoteEngine
from tests.engine.remote.conftest import remote, run
from tests.engine.remote.test_generate import collect
from tests.support.fake_upstream import MODEL, FakeUpstream
from tests.support.live_server import free_port


async def facts(engine: RemoteEngine) -> dict[str, Any]:
    template = engine.checkpoint_template()
    return {
        "max_model_len": engine.max_model_len(),
        "eos": None if template is None else template.eos_token,
        "layers": engine.checkpoint_info().num_layers,
    }


def test_the_tokenizer_is_the_local_checkpoints(
    upstream: FakeUpstream, cache_dir: Path, checkpoint: Checkpoint
) -> None:
    async def scenario(engine: RemoteEngine) -> list[int]:
        return engine.encode("Hello <think>")

    ids = run(remote(upstream), cache_dir, scenario)

    assert ids == checkpoint.tokenizer.encode("Hello <think>", add_special_tokens=False)
    assert ids[-1] == checkpoint.think_open


def test_max_model_len_and_the_template_are_learned_at_start(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    assert run(remote(upstream), cache_dir, facts) == {
        "max_model_len": 4096,
        "eos": "<|im_end|>",
        "layers": 2,
    }


@pytest.mark.parametrize(
    ("configured", "served"),
    [
        pytest.param(2048, 2048, id="configured-below-upstream"),
        pytest.param(8192, 4096, id="at-most-the-upstreams"),
    ],
)
def test_a_configured_max_model_len_is_capped_by_the_upstreams(
    upstream: FakeUpstream, cache_dir: Path, configured: int, served: int
) -> None:
    result = run(remote(upstream, max_model_len=configured), cache_dir, facts)

    assert result["max_model_len"] == served


def test_without_a_length_anywhere_start_asks_for_one(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.models = [{"id": MODEL, "object": "model"}]

    with pytest.raises(EngineStartError, match="set max_model_len"):
        run(remote(upstream), cache_dir, facts)
    assert run(remote(upstream, max_model_len=1000), cache_dir, facts)["max_model_len"] == 1000


def test_start_waits_for_a_slow_upstream_to_list_the_model(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.unlisted_answers = 2

    run(remote(upstream), cache_dir, facts)

    assert len(upstream.calls("/v1/models")) == 3


def test_a_model_the_upstream_never_lists_fails_the_start_naming_what_it_lists(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.models = [{"id": "other", "object": "model", "max_model_len": 10}]

    with pytest.raises(EngineStartError, match="does not serve 'qwq' \\(it lists 'other'\\)"):
        run(remote(upstream, start_timeout_s=0.5), cache_dir, facts)


def test_an_unreachable_upstream_fails_the_start(cache_dir: Path) -> None:
    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    config = remote(Nowhere(), start_timeout_s=0.5)  # type: ignore[arg-type]

    with pytest.raises(EngineStartError, match="cannot be reached"):
        run(config, cache_dir, facts)


@pytest.fixture
def guarded() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key="s3cret") as fake:
        yield fake


def test_the_api_key_goes_on_every_upstream_call(
    guarded: FakeUpstream, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "s3cret")

    async def scenario(engine: RemoteEngine) -> bool:
        await collect(engine)
        engine._health._checked_at = float("-inf")  # force a probe now
        return (await engine.status()).healthy

    assert run(remote(guarded, api_key_env="UPSTREAM_KEY"), cache_dir, scenario)
    paths = {call.path for call in guarded.received}
    assert paths == {"/v1/models", "/v1/completions", "/health"}
    assert {call.headers.get("authorization") for call in guarded.received} == {"Bearer s3cret"}


def test_an_unset_api_key_variable_fails_the_start(
    guarded: FakeUpstream, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPSTREAM_KEY", raising=False)

    with pytest.raises(EngineStartError, match="UPSTREAM_KEY"):
        run(remote(guarded, api_key_env="UPSTREAM_KEY"), cache_dir, facts)
    assert guarded.received == []


def test_refused_credentials_fail_the_start_at_once(guarded: FakeUpstream, cache_dir: Path) -> None:
    with pytest.raises(EngineStartError, match="refused this server's credentials"):
        run(remote(guarded, start_timeout_s=60), cache_dir, facts)
    assert len(guarded.received) == 1


def test_a_tokenizer_that_cannot_be_loaded_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(EngineStartError, match="could not load the tokenizer"):
        load_checkpoint(str(tmp_path / "missing"), tmp_path)
