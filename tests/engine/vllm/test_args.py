"""`vllm_args`: checked against the installed vLLM's own AsyncEngineArgs (imported, not faked),
then passed through by `engine_args` after the typed settings.

    unknown name        refused, with the nearest valid names
    owned name          refused, naming the typed setting to use instead
    wrong value         refused: scalar types, nested configs, speculative_config keys
    CPU build           enable_chunked_prefill owned; max_num_batched_tokens >= max_model_len
    good name           in engine_args' output, as given (a copy)
"""

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from engine.config import EngineConfig
from engine.errors import EngineStartError
from engine.vllm.args import engine_arg_fields, owned_arg_names, vllm_args_problems
from engine.vllm.engine import engine_args, prepare_vllm_environment
from tests.support.paths import REPO

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def config(vllm_args: dict[str, Any], max_model_len: int = 4096) -> EngineConfig:
    return EngineConfig(checkpoint="x", max_model_len=max_model_len, vllm_args=vllm_args)


def problems(vllm_args: dict[str, Any], *, cpu: bool = False) -> list[str]:
    return [str(problem) for problem in vllm_args_problems(config(vllm_args), cpu=cpu)]


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        pytest.param("blok_size", "block_size", id="typo"),
        pytest.param("block-size", "block_size", id="dashes"),
        pytest.param("max_num_batched_token", "max_num_batched_tokens", id="plural"),
        pytest.param("max_model_length", "engine.max_model_len", id="owned-named-as-setting"),
    ],
)
def test_an_unknown_name_is_refused_with_the_nearest_names(given: str, suggested: str) -> None:
    [message] = problems({given: 16})

    assert message.startswith(f"vllm_args.{given}: not a vLLM engine argument (did you mean ")
    assert suggested in message


def test_a_name_with_nothing_near_it_points_at_the_list() -> None:
    assert problems({"zzqqxx": 1}) == [
        "vllm_args.zzqqxx: not a vLLM engine argument (see `vllm serve --help`, names with '_')"
    ]


def test_the_owned_names_are_those_engine_args_sets_from_typed_settings() -> None:
    expected = {
        "model", "max_model_len", "dtype", "quantization", "kv_cache_dtype",
        "tensor_parallel_size", "gpu_memory_utilization", "kv_cache_memory_bytes",
        "max_num_seqs", "enforce_eager", "seed", "enable_lora", "max_lora_rank", "max_loras",
        "max_cpu_loras", "served_model_name", "reasoning_parser", "structured_outputs_config",
        "enable_sleep_mode", "disable_log_stats",
    }  # fmt: skip

    assert owned_arg_names(cpu=False) == expected
    assert owned_arg_names(cpu=True) == expected | {
        "enable_chunked_prefill",
        "worker_extension_cls",
    }


@pytest.mark.parametrize("name", sorted(owned_arg_names(cpu=True)))
def test_an_owned_name_is_refused_naming_the_setting_to_use(name: str) -> None:
    [message] = problems({name: 1}, cpu=True)

    assert message.startswith(f"vllm_args.{name}: ")
    if "use engine." in message:
        setting = message.split("use engine.")[1].split()[0]
        assert setting in EngineConfig.model_fields, f"{setting} is not an engine setting"
    else:
        assert "fixed" in message or "use " in message


@pytest.mark.parametrize(
    ("cpu", "setting"),
    [(True, "engine.cpu_kv_cache_gib"), (False, "engine.kv_cache_memory_bytes")],
    ids=["cpu", "gpu"],
)
def test_the_kv_cache_size_has_a_setting_per_device(cpu: bool, setting: str) -> None:
    [message] = problems({"kv_cache_memory_bytes": 2**30}, cpu=cpu)

    assert f"use {setting} instead" in message


@pytest.mark.parametrize(
    ("vllm_args", "expected"),
    [
        pytest.param(
            {"block_size": "16"},
            "vllm_args.block_size: '16' is not int | None: Input should be a valid integer",
            id="string-for-int",
        ),
        pytest.param(
            {"enable_prefix_caching": 1},
            "vllm_args.enable_prefix_caching: 1 is not bool | None: "
            "Input should be a valid boolean",
            id="int-for-bool",
        ),
        pytest.param(
            {"compilation_config": {"modee": 0}},
            "vllm_args.compilation_config.modee: Unexpected keyword argument",
            id="nested-config",
        ),
        pytest.param(
            {"speculative_config": {"methd": "ngram", "num_speculative_tokens": 3}},
            "vllm_args.speculative_config.methd: not a SpeculativeConfig field "
            "(did you mean method?)",
            id="speculative-config-key",
        ),
    ],
)
def test_a_wrong_value_is_refused(vllm_args: dict[str, Any], expected: str) -> None:
    assert problems(vllm_args) == [expected]


@pytest.mark.parametrize(
    ("cpu", "vllm_args", "refused"),
    [
        pytest.param(True, {"enable_chunked_prefill": True}, True, id="cpu-chunked-prefill"),
        pytest.param(False, {"enable_chunked_prefill": True}, False, id="gpu-chunked-prefill"),
        pytest.param(True, {"max_num_batched_tokens": 1024}, True, id="cpu-batch-below-len"),
        pytest.param(True, {"max_num_batched_tokens": 8192}, False, id="cpu-batch-above-len"),
        pytest.param(False, {"max_num_batched_tokens": 1024}, False, id="gpu-batch-below-len"),
    ],
)
def test_the_cpu_build_keeps_prefilling_each_prompt_in_one_step(
    cpu: bool, vllm_args: dict[str, Any], refused: bool
) -> None:
    assert bool(problems(vllm_args, cpu=cpu)) == refused


GOOD = {
    "block_size": 16,
    "max_num_batched_tokens": 8192,
    "enable_prefix_caching": False,
    "speculative_config": {"method": "ngram", "num_speculative_tokens": 3},
    "compilation_config": {"mode": 0},
}


@pytest.mark.parametrize("cpu", [True, False], ids=["cpu", "gpu"])
def test_good_names_pass_through_into_engine_args_after_the_typed_ones(cpu: bool) -> None:
    engine = config(GOOD)

    args = engine_args(engine, "x", cpu=cpu)

    assert {name: args[name] for name in GOOD} == GOOD
    assert args["max_model_len"] == 4096


def test_engine_args_passes_copies_vllm_may_fill_in() -> None:
    engine = config({"speculative_config": {"method": "ngram"}})

    engine_args(engine, "x", cpu=False)["speculative_config"]["num_speculative_tokens"] = 3

    assert engine.vllm_args == {"speculative_config": {"method": "ngram"}}


def test_engine_args_refuses_bad_vllm_args_before_vllm_builds_anything() -> None:
    engine = config({"blok_size": 16, "max_model_len_": 1})

    with pytest.raises(EngineStartError) as raised:
        engine_args(engine, "x", cpu=False, name="@cf/qwen/qwq-32b")

    message = str(raised.value)
    assert message.startswith("@cf/qwen/qwq-32b: vllm_args.blok_size: ")
    assert "block_size" in message
    assert "vllm_args.max_model_len_: " in message


def test_the_fields_read_from_vllms_source_are_its_dataclass_fields() -> None:
    prepare_vllm_environment()
    from vllm.engine.arg_utils import AsyncEngineArgs

    declared = {field.name: field.type for field in dataclasses.fields(AsyncEngineArgs)}
    read = engine_arg_fields()

    assert set(read) == set(declared)
    plain = {name: kind for name, kind in read.items() if kind is not None}
    assert plain == {name: declared[name] for name in plain}
    assert {"block_size", "max_num_batched_tokens", "speculative_config"} <= set(plain)


@pytest.mark.parametrize(
    ("vllm_args", "imported"),
    [
        pytest.param("{}", False, id="none"),
        pytest.param(
            "{'block_size': 16, 'speculative_config': {'method': 'ngram'}, 'blok_size': 1}",
            False,
            id="plain-values",
        ),
        pytest.param("{'compilation_config': {'mode': 0}}", True, id="a-vllm-config"),
    ],
)
def test_vllm_is_imported_only_to_build_one_of_its_configs(vllm_args: str, imported: bool) -> None:
    script = (
        "import sys\n"
        "from engine.config import EngineConfig\n"
        "from engine.vllm.args import vllm_args_problems\n"
        f"config = EngineConfig(checkpoint='x', max_model_len=64, vllm_args={vllm_args})\n"
        "vllm_args_problems(config, cpu=True)\n"
        "print('vllm' in sys.modules)\n"
    )

    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )

    assert run.stdout.strip().splitlines()[-1] == str(imported)
