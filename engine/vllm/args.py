"""`EngineConfig.vllm_args`: further vLLM engine arguments, passed as given after the typed
settings, and checked against vLLM's own `AsyncEngineArgs` before an engine is built.

    blok_size: 16                  not an engine argument (did you mean block_size?)
    max_model_len: 4096            set by a typed setting: use engine.max_model_len instead
    block_size: "16"               the value against the field's type (scalars, lists, dicts)
    compilation_config: {modee: 0} what vLLM's nested config says (built as EngineArgs builds it)
    speculative_config: {methd: }  its keys against vLLM's SpeculativeConfig

A name is owned by a typed setting when `engine_args` sets it from one; the set is derived from
that function, so a new typed setting claims its name here too.

The CPU build prefills every prompt in one step (see `engine_args`): there
`enable_chunked_prefill` is owned, and `max_num_batched_tokens` may be raised (more prompts
prefilled together) but not below max_model_len, which vLLM would refuse anyway.

Importing vLLM takes ten seconds and more, so the fields are read from vLLM's source (the tests
compare them with the dataclasses); only a dictionary for one of vLLM's config classes is built,
and that imports vLLM.
"""

import ast
import copy
import dataclasses
import difflib
import functools
import importlib.util
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from engine.config import EngineConfig
from engine.vllm.engine import engine_args, prepare_vllm_environment

# Owned arguments whose typed setting has another name (the others have the same name).
_TYPED_SETTING = {
    "model": "engine.checkpoint or engine.builtin",
    "served_model_name": "the model's name",
    "structured_outputs_config": "engine.structured_output_backend",
    "enable_sleep_mode": "swap_groups (method 'sleep')",
}
# Owned arguments no setting changes.
_FIXED = {
    "disable_log_stats": "fixed: the server collects the engine's metrics itself",
    "enable_chunked_prefill": "fixed on the CPU build, which prefills each prompt in one step "
    "(a seeded request prefilled in chunks kills the engine)",
    "worker_extension_cls": "fixed on the CPU build, where it asks for AMX in vLLM's workers "
    "(engine.vllm.amx)",
}
_CPU_KV_CACHE = "engine.cpu_kv_cache_gib"

_STRICT = ConfigDict(strict=True)


@dataclasses.dataclass(frozen=True, slots=True)
class ArgProblem:
    """What is wrong with one vllm_args entry: `name` is its key (or `key.subkey`)."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"vllm_args.{self.name}: {self.message}"


def with_vllm_args(args: dict[str, Any], config: EngineConfig, *, cpu: bool) -> dict[str, Any]:
    """`args` (the typed settings' engine arguments) with `config.vllm_args` on top.

    Raises ValueError naming every bad entry. The values are copied: vLLM fills in the
    dictionaries it is given (speculative_config), and an engine may be built more than once.
    """
    problems = vllm_args_problems(config, cpu=cpu)
    if problems:
        raise ValueError("; ".join(str(problem) for problem in problems))
    return {**args, **copy.deepcopy(config.vllm_args)}


def vllm_args_problems(config: EngineConfig, *, cpu: bool) -> list[ArgProblem]:
    """Every problem of `config.vllm_args`, empty when they can be passed to vLLM. Raises
    ImportError when vLLM is not installed."""
    if not config.vllm_args:
        return []
    fields = engine_arg_fields()
    owned = owned_arg_names(cpu=cpu)
    problems: list[ArgProblem] = []
    for name, value in config.vllm_args.items():
        if name not in fields:
            problems.append(ArgProblem(name, _unknown(name, fields, owned, cpu=cpu)))
        elif name in owned:
            fixed = _FIXED.get(name)
            message = fixed or f"set by a typed setting: use {_typed(name, cpu)} instead"
            problems.append(ArgProblem(name, message))
        else:
            problems.extend(_value_problems(name, value, fields[name], config, cpu=cpu))
    return problems


@functools.cache
def engine_arg_fields() -> Mapping[str, Any]:
    """vLLM's `AsyncEngineArgs` fields: name -> type, or None when the annotation is more than
    scalars, lists, dicts and literals (a vLLM config class, an alias of vLLM's)."""
    return _dataclass_fields("engine/arg_utils.py", ("EngineArgs", "AsyncEngineArgs"))


@functools.cache
def owned_arg_names(*, cpu: bool) -> frozenset[str]:
    """The engine arguments `engine_args` sets from typed settings, with every option on."""
    everything = EngineConfig(
        checkpoint="x", max_model_len=1, enable_lora=True, kv_cache_memory_bytes=1
    )
    on = {
        device: set(engine_args(everything, "x", cpu=device, name="x", sleep_mode=True))
        for device in (False, True)
    }
    owned = on[False] | on[True]
    if not cpu:
        owned -= on[True] - on[False]  # the one-step prefill of the CPU build
    return frozenset(owned - {"max_num_batched_tokens"})  # see _prefill_problems


def _dataclass_fields(module: str, classes: tuple[str, ...]) -> Mapping[str, Any]:
    """The fields of dataclasses in an installed vLLM module (a class, then its subclasses),
    read from the source, each with `_plain_type` of its annotation."""
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("vLLM is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    fields: dict[str, Any] = {}
    for name in classes:
        for statement in found[name].body:
            if not isinstance(statement, ast.AnnAssign) or not isinstance(
                statement.target, ast.Name
            ):
                continue
            if not ast.unparse(statement.annotation).startswith("ClassVar"):
                fields[statement.target.id] = _plain_type(statement.annotation)
    return types.MappingProxyType(fields)


_PLAIN_NAMES: dict[str, Any] = {
    "bool": bool, "int": int, "float": float, "str": str, "Any": Any, "dict": dict, "list": list,
}  # fmt: skip


def _plain_type(node: ast.expr) -> Any:
    """The type an annotation names when it is made of scalars, lists, dicts and literals only
    (pydantic then checks a value exactly, and vLLM takes it as it is), else None."""
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.Name):
        return _PLAIN_NAMES.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _plain_type(node.left), _plain_type(node.right)
        return None if left is None or right is None else left | right
    if not isinstance(node, ast.Subscript) or not isinstance(node.value, ast.Name):
        return None
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if node.value.id == "Literal":
        values = [part.value for part in parts if isinstance(part, ast.Constant)]
        return Literal[tuple(values)] if len(values) == len(parts) else None
    arguments = [_plain_type(part) for part in parts]
    if None in arguments:
        return None
    if node.value.id == "dict" and len(arguments) == 2:
        return dict[arguments[0], arguments[1]]  # type: ignore[valid-type]
    if node.value.id == "list" and len(arguments) == 1:
        return list[arguments[0]]  # type: ignore[valid-type]
    return None


def _unknown(name: str, fields: Mapping[str, Any], owned: frozenset[str], *, cpu: bool) -> str:
    close = difflib.get_close_matches(name.replace("-", "_"), list(fields), n=3, cutoff=0.6)
    if not close:
        return "not a vLLM engine argument (see `vllm serve --help`, names with '_')"
    named = [
        _typed(match, cpu) if match in owned and match not in _FIXED else match for match in close
    ]
    return f"not a vLLM engine argument (did you mean {_either(named)}?)"


def _typed(name: str, cpu: bool) -> str:
    if name == "kv_cache_memory_bytes" and cpu:
        return _CPU_KV_CACHE
    return _TYPED_SETTING.get(name, f"engine.{name}")


def _value_problems(
    name: str, value: Any, annotation: Any, config: EngineConfig, *, cpu: bool
) -> list[ArgProblem]:
    if annotation is not None:
        try:
            TypeAdapter(annotation, config=_STRICT).validate_python(value)
        except ValidationError as error:
            message = str(error.errors()[0]["msg"])
            return [ArgProblem(name, f"{value!r} is not {_describe(annotation)}: {message}")]
    elif isinstance(value, dict):
        # vLLM turns a dictionary into one of its configs; other values it checks as it builds.
        problem = _build_problem(name, value)
        if problem is not None:
            return [problem]
    if name == "speculative_config" and isinstance(value, dict):
        return _speculative_problems(value)
    if name == "max_num_batched_tokens" and cpu:
        return _prefill_problems(value, config)
    return []


def _build_problem(name: str, value: Any) -> ArgProblem | None:
    """Build `AsyncEngineArgs` with this one argument: its `__post_init__` turns dictionaries
    into vLLM's nested configs (compilation_config, attention_config...) and checks them. It
    loads nothing: the model is the current directory, which exists, so that even with
    HF_HUB_OFFLINE set vLLM does not look it up. This imports vLLM."""
    prepare_vllm_environment()
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        AsyncEngineArgs(model=os.curdir, **{name: copy.deepcopy(value)})
    except ValidationError as error:
        item = error.errors()[0]
        where = ".".join([name, *(str(part) for part in item["loc"])])
        return ArgProblem(where, str(item["msg"]))
    except (TypeError, ValueError, AttributeError) as error:
        return ArgProblem(name, str(error).splitlines()[0] if str(error) else repr(error))
    return None


def _speculative_problems(value: dict[str, Any]) -> list[ArgProblem]:
    known = list(_dataclass_fields("config/speculative.py", ("SpeculativeConfig",)))
    problems = []
    for key in value:
        # vLLM reads these keys with '-' as '_' (EngineArgs.create_speculative_config).
        if str(key).replace("-", "_") not in known:
            close = difflib.get_close_matches(str(key).replace("-", "_"), known, n=3)
            hint = f" (did you mean {_either(close)}?)" if close else ""
            problems.append(
                ArgProblem(f"speculative_config.{key}", f"not a SpeculativeConfig field{hint}")
            )
    return problems


def _prefill_problems(value: Any, config: EngineConfig) -> list[ArgProblem]:
    if isinstance(value, int) and value < config.max_model_len:
        return [
            ArgProblem(
                "max_num_batched_tokens",
                f"{value} is less than max_model_len ({config.max_model_len}); the CPU build "
                "prefills each prompt in one step, so it must be at least max_model_len",
            )
        ]
    return []


def _describe(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _either(names: list[str]) -> str:
    return " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
