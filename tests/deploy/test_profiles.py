"""The GPU profiles in configs/, checked without a GPU: both models from their real checkpoints
(each profile loads through `load_settings`), windows within Workers AI's, and every engine's
memory within its GPU (`tests.support.gpu_memory`, computed from the models' architecture).

Three kinds of GPU budget: engines alone on their GPU or sharing it awake (a fraction of the GPU
each, `gpu_memory_utilization`), engines taking turns in sleep mode (a fixed KV cache each; the
awake one plus what the sleeping one keeps must leave the headroom free), and engines taking
turns by restarting (each alone on the GPU while it is up).
"""

import re

import pytest

from engine.config import EngineConfig, SwapGroupConfig
from server.generation.specs import MODELS
from server.settings import Settings, load_settings
from tests.support.app import QWQ, R1
from tests.support.gpu_memory import (
    CUDA_CONTEXT_GIB,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    GB,
    GIB,
    LORA_FEATURES_PER_LAYER,
    RUNTIME_RESERVE_GIB,
    SWAP_HEADROOM,
    asleep_gib,
    awake_gib,
    kv_gib,
    kv_tokens,
    lora_gib,
    pinned_host_gib,
    runtime_gib,
    weight_gib,
)
from tests.support.paths import CONFIGS

# Memory the GPUs report (nvidia-smi), the smallest card of each class.
H100_GIB = 81559 / 1024  # H100 80GB (an A100 80GB reports 81920 MiB)
H200_GIB = 143771 / 1024
L40S_GIB = 46068 / 1024  # L40S, L40, A40 (an RTX A6000 reports 49140 MiB)
RTX_4090_GIB = 24564 / 1024  # RTX 4090, A10 (an RTX 3090 reports 24576 MiB)
PROFILE_GPU_GIB = {
    "gpu-2x80gb.yaml": H100_GIB,
    "gpu-1x141gb-fp8.yaml": H200_GIB,
    "gpu-1x80gb-swap.yaml": H100_GIB,
    "gpu-1x80gb-fp8.yaml": H100_GIB,
    "gpu-1x48gb-awq.yaml": L40S_GIB,
    "gpu-1x24gb-awq.yaml": RTX_4090_GIB,
}
PROFILES = sorted(PROFILE_GPU_GIB)
BF16_CHECKPOINTS = {QWQ: "Qwen/QwQ-32B", R1: "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"}
AWQ_CHECKPOINTS = {QWQ: "Qwen/QwQ-32B-AWQ", R1: "Valdemardi/DeepSeek-R1-Distill-Qwen-32B-AWQ"}
CHECKPOINTS = {
    name: AWQ_CHECKPOINTS if name.endswith("-awq.yaml") else BF16_CHECKPOINTS for name in PROFILES
}
# Engines that share a GPU awake (a fraction each); taking turns in sleep mode; restarting.
SHARED_PROFILES = ["gpu-1x141gb-fp8.yaml", "gpu-1x80gb-fp8.yaml"]
SLEEP_PROFILES = ["gpu-1x48gb-awq.yaml", "gpu-1x80gb-swap.yaml"]
RESTART_PROFILES = ["gpu-1x24gb-awq.yaml"]
# Profiles that leave the batch to vLLM: RUNTIME_RESERVE_GIB covers them. The others bound it,
# and `runtime_gib` estimates what that bound needs.
UNBOUNDED_BATCH_PROFILES = ["gpu-1x141gb-fp8.yaml", "gpu-2x80gb.yaml"]
BOUNDED_BATCH_PROFILES = sorted(set(PROFILES) - set(UNBOUNDED_BATCH_PROFILES))
# Two engines sharing one GPU must leave room for each engine's CUDA context; so must one
# engine alone.
SHARED_GPU_MAX_UTILIZATION = 0.95
# Reasoning traces run 10-30k tokens: a window cut below Workers AI's must keep at least this.
REASONING_MIN_WINDOW = 32768
# ...except where the GPU cannot hold it; the profile's comments say so.
SHORT_WINDOW_PROFILES = {"gpu-1x24gb-awq.yaml"}
# A sleeping engine's weights and CUDA-graph pool are pinned in host memory; the server and the
# two engine processes need some more of their own.
HOST_PROCESSES_GB = 10
# The safetensors shards of Valdemardi/DeepSeek-R1-Distill-Qwen-32B-AWQ (Hugging Face file list).
AWQ_CHECKPOINT_GB = 4.96 + 4.99 + 4.96 + 4.42


def profile(name: str) -> Settings:
    return load_settings(CONFIGS / name)


def engine_of(settings: Settings, model: str) -> EngineConfig:
    (engine,) = [served.local_engine for served in settings.models if served.name == model]
    return engine


def engines(name: str) -> list[EngineConfig]:
    return [served.local_engine for served in profile(name).models]


def only_group(settings: Settings) -> SwapGroupConfig:
    (group,) = settings.swap_groups
    return group


def budget_runtime_gib(name: str, engine: EngineConfig) -> float:
    return RUNTIME_RESERVE_GIB if name in UNBOUNDED_BATCH_PROFILES else runtime_gib(engine)


def model_ids(models: tuple[str, ...] = (QWQ, R1)) -> list[str]:
    return [model.rsplit("/", 1)[-1] for model in models]


def per_model(names: list[str]) -> list[tuple[str, str]]:
    return [(name, model) for name in names for model in (QWQ, R1)]


def per_model_ids(names: list[str]) -> list[str]:
    return [f"{name.removesuffix('.yaml')}-{model}" for name in names for model in model_ids()]


def test_every_gpu_profile_has_its_budget_checked() -> None:
    assert sorted(path.name for path in CONFIGS.glob("gpu-*.yaml")) == PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_profile_serves_both_models_from_real_checkpoints(name: str) -> None:
    checkpoints = {model.name: model.local_engine.checkpoint for model in profile(name).models}
    assert checkpoints == CHECKPOINTS[name]


@pytest.mark.parametrize("name", PROFILES)
def test_profile_renders_the_official_chat_templates(name: str) -> None:
    # Quantized checkpoints keep the original tokenizer: no stand-in, Workers AI's templates.
    for model in profile(name).models:
        assert (model.chat_template, model.stand_in) == ("official", None)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_binds_loopback_unless_the_command_says_otherwise(name: str) -> None:
    assert profile(name).loopback_only


@pytest.mark.parametrize("name", PROFILES)
def test_profile_serves_qwq_full_window(name: str) -> None:
    assert engine_of(profile(name), QWQ).max_model_len == MODELS[QWQ].context_window == 24000


@pytest.mark.parametrize("name", PROFILES)
def test_profile_windows_stay_within_workers_ai_and_leave_room_to_reason(name: str) -> None:
    floor = MODELS[QWQ].context_window if name in SHORT_WINDOW_PROFILES else REASONING_MIN_WINDOW
    for model in profile(name).models:
        workers_ai = MODELS[model.name].context_window
        assert min(workers_ai, floor) <= model.local_engine.max_model_len <= workers_ai


@pytest.mark.parametrize("name", ["gpu-1x141gb-fp8.yaml", "gpu-1x48gb-awq.yaml"])
def test_profile_serves_r1_full_window(name: str) -> None:
    assert engine_of(profile(name), R1).max_model_len == 80000


def test_2x80gb_profile_puts_each_model_on_its_own_gpu() -> None:
    settings = profile("gpu-2x80gb.yaml")
    gpus = [engine_of(settings, model).gpu_ids for model in (QWQ, R1)]
    assert gpus == [[0], [1]]


@pytest.mark.parametrize("name", SHARED_PROFILES + SLEEP_PROFILES + RESTART_PROFILES)
def test_single_gpu_profile_puts_both_models_on_gpu_0(name: str) -> None:
    assert [engine.gpu_ids for engine in engines(name)] == [[0], [0]]


@pytest.mark.parametrize("name", SHARED_PROFILES)
def test_shared_profile_runs_both_engines_at_once_within_the_gpu(name: str) -> None:
    assert profile(name).swap_groups == []
    assert sum(engine.gpu_memory_utilization for engine in engines(name)) <= (
        SHARED_GPU_MAX_UTILIZATION
    )


@pytest.mark.parametrize(
    ("name", "method"),
    [(name, "sleep") for name in SLEEP_PROFILES] + [(name, "restart") for name in RESTART_PROFILES],
)
def test_single_gpu_profile_swaps_its_two_models(name: str, method: str) -> None:
    group = only_group(profile(name))
    assert (sorted(group.models), group.method) == (sorted([QWQ, R1]), method)


@pytest.mark.parametrize("name", RESTART_PROFILES)
def test_restart_profile_gives_the_gpu_to_one_engine_at_a_time(name: str) -> None:
    for engine in engines(name):
        assert engine.gpu_memory_utilization <= SHARED_GPU_MAX_UTILIZATION


@pytest.mark.parametrize(
    ("name", "model"),
    per_model(SHARED_PROFILES + RESTART_PROFILES + ["gpu-2x80gb.yaml"]),
    ids=per_model_ids(SHARED_PROFILES + RESTART_PROFILES + ["gpu-2x80gb.yaml"]),
)
def test_one_full_length_sequence_fits_in_the_kv_cache(name: str, model: str) -> None:
    engine = engine_of(profile(name), model)
    assert engine.tensor_parallel_size == 1, "the budget below is for one GPU per engine"
    budget = engine.gpu_memory_utilization * PROFILE_GPU_GIB[name]
    runtime = budget_runtime_gib(name, engine)
    free_for_kv = budget - weight_gib(engine) - runtime - lora_gib(engine)
    assert kv_gib(engine) <= free_for_kv, (
        f"{model}: {engine.max_model_len} tokens need {kv_gib(engine):.2f} GiB of KV cache; "
        f"{budget:.1f} GiB - {weight_gib(engine):.1f} GiB weights - {runtime:.1f} GiB "
        f"runtime - {lora_gib(engine):.1f} GiB LoRA slots leaves {free_for_kv:.2f} GiB"
    )


@pytest.mark.parametrize(
    ("name", "model"), per_model(SLEEP_PROFILES), ids=per_model_ids(SLEEP_PROFILES)
)
def test_fixed_kv_cache_holds_one_full_length_sequence(name: str, model: str) -> None:
    engine = engine_of(profile(name), model)
    assert engine.kv_cache_memory_bytes is not None, "sleeping engines need a fixed KV cache"
    assert kv_gib(engine) <= engine.kv_cache_memory_bytes / GIB, (
        f"{model}: {engine.max_model_len} tokens need {kv_gib(engine):.2f} GiB of KV cache; "
        f"the engine has {kv_tokens(engine)} tokens"
    )


@pytest.mark.parametrize(
    ("name", "awake"), per_model(SLEEP_PROFILES), ids=per_model_ids(SLEEP_PROFILES)
)
def test_awake_engine_and_sleeping_engine_leave_the_headroom_free(name: str, awake: str) -> None:
    settings = profile(name)
    (asleep,) = {QWQ, R1} - {awake}
    usable = (1 - SWAP_HEADROOM) * PROFILE_GPU_GIB[name]
    up, down = engine_of(settings, awake), engine_of(settings, asleep)
    assert up.tensor_parallel_size == down.tensor_parallel_size == 1
    total = awake_gib(up) + asleep_gib(down)
    assert total <= usable, (
        f"{awake} awake ({awake_gib(up):.1f} GiB) + {asleep} asleep "
        f"({asleep_gib(down):.1f} GiB) = {total:.1f} GiB > {usable:.1f} GiB usable"
    )


@pytest.mark.parametrize(
    ("name", "starting"), per_model(SLEEP_PROFILES), ids=per_model_ids(SLEEP_PROFILES)
)
def test_engine_starts_while_the_other_sleeps(name: str, starting: str) -> None:
    # vLLM refuses to start unless the GPU's free memory covers gpu_memory_utilization x GPU
    # (vllm/v1/worker/utils.py::request_memory), even with a fixed KV cache.
    settings = profile(name)
    (asleep,) = {QWQ, R1} - {starting}
    gpu = PROFILE_GPU_GIB[name]
    free = gpu - asleep_gib(engine_of(settings, asleep)) - CUDA_CONTEXT_GIB
    requested = engine_of(settings, starting).gpu_memory_utilization * gpu
    assert requested <= free, f"{starting} asks for {requested:.1f} GiB free; {free:.1f} GiB is"


@pytest.mark.parametrize("name", SLEEP_PROFILES)
def test_sleep_profile_states_the_host_memory_the_sleeping_engine_pins(name: str) -> None:
    stated = re.search(r"^# Host RAM: at least (\d+) GB\.", (CONFIGS / name).read_text(), re.M)
    assert stated, f"{name} must state 'Host RAM: at least N GB.' in its comments"
    pinned_gb = max(pinned_host_gib(engine) for engine in engines(name)) * GIB / GB
    assert int(stated[1]) >= pinned_gb + HOST_PROCESSES_GB, (
        f"{pinned_gb:.1f} GB pinned + {HOST_PROCESSES_GB} GB for the processes"
    )


@pytest.mark.parametrize("name", BOUNDED_BATCH_PROFILES)
def test_profile_states_the_batch_its_budget_assumes(name: str) -> None:
    # runtime_gib depends on these two; left to vLLM they could change with its version.
    for engine in engines(name):
        assert engine.max_num_seqs is not None
        assert "max_num_batched_tokens" in engine.vllm_args


def test_runtime_estimate_for_vllms_default_batch_stays_within_the_reserve() -> None:
    engine = EngineConfig(checkpoint="x", max_model_len=24000)
    defaults = EngineConfig(
        checkpoint="x",
        max_model_len=24000,
        max_num_seqs=DEFAULT_MAX_NUM_SEQS,
        vllm_args={"max_num_batched_tokens": DEFAULT_MAX_NUM_BATCHED_TOKENS},
    )
    assert runtime_gib(engine) == runtime_gib(defaults) <= RUNTIME_RESERVE_GIB


def test_awq_weight_estimate_matches_the_published_checkpoint() -> None:
    engine = engine_of(profile("gpu-1x48gb-awq.yaml"), R1)
    assert weight_gib(engine) * GIB / GB == pytest.approx(AWQ_CHECKPOINT_GB, abs=0.05)


def test_lora_slots_of_the_two_gpu_profiles_take_1_gib() -> None:
    # 2 slots x rank 32 x 64 layers x 131072 x 2 bytes, as the profiles' comments say.
    assert LORA_FEATURES_PER_LAYER == 131072
    for name in UNBOUNDED_BATCH_PROFILES:
        for engine in engines(name):
            assert lora_gib(engine) == 1.0
