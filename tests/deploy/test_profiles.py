"""The GPU profiles in configs/, checked without a GPU: both models from their real
checkpoints, windows within Workers AI's, and every engine's memory within its GPU's budget
(`tests.support.gpu_memory`, computed from the models' architecture)."""

import pytest

from engine.config import EngineConfig
from server.generation.specs import MODELS
from server.settings import Settings, load_settings
from tests.support.app import QWQ, R1
from tests.support.gpu_memory import (
    LORA_FEATURES_PER_LAYER,
    RUNTIME_RESERVE_GIB,
    kv_gib,
    lora_gib,
    weight_gib,
)
from tests.support.paths import CONFIGS

# Memory the GPUs report (nvidia-smi): H100/A100 80GB 81559 MiB or more, H200 143771 MiB.
PROFILE_GPU_GIB = {
    "gpu-2x80gb.yaml": 81559 / 1024,
    "gpu-1x141gb-fp8.yaml": 143771 / 1024,
}
PROFILES = sorted(PROFILE_GPU_GIB)
# Two engines sharing one GPU must leave room for each engine's CUDA context.
SHARED_GPU_MAX_UTILIZATION = 0.95
# Reasoning traces run 10-30k tokens: a window cut below Workers AI's must keep at least this.
REASONING_MIN_WINDOW = 32768


def profile(name: str) -> Settings:
    return load_settings(CONFIGS / name)


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
