"""Tiny random-weight stand-ins for the 32B Qwen2 models, built locally in a second.

Each stand-in keeps what the serving path depends on -- the architecture (`Qwen2ForCausalLM`), the
real model's special and added tokens with the same special/non-special split, its eos/bos/pad
roles, its generation defaults, a 131072-token position range and the project's chat template --
and shrinks everything else: 2 layers of width 128 and a ~2700-token byte-level BPE vocabulary
(`engine.builtin.bpe`). The weights are random (fixed seed), so what the models say is noise.

Only `engine.builtin.checkpoints` should call `build_tiny_checkpoint`; it adds the caching and
locking.
torch, transformers and tokenizers are imported inside the functions that use them.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat_templates.renderer import QWQ_EOS, R1_BOS, R1_EOS, builtin_source
from engine.builtin.bpe import train_bpe

SEED = 20250101
"""Seeds the weights; the tokenizer needs none (BPE training is deterministic)."""

MAX_POSITIONS = 131072
"""Position range: the served context windows are 24000 (QwQ) and 80000 (R1 distill) tokens."""


@dataclass(frozen=True)
class TinySpec:
    """What one stand-in copies from its real model.

    `template` names the project's chat template for it (`chat_templates.renderer`), whose
    bos and eos tokens the spec uses. `special_tokens` are skipped by
    `decode(skip_special_tokens=True)`; `added_tokens` are single ids too but survive it (the
    real models emit `<think>` ... `</think>` as visible text). `bos`, `eos` and `pad` name
    tokens from those two lists; `generation` is generation_config.json minus the token ids,
    which are filled in from the tokenizer.
    """

    template: str
    special_tokens: tuple[str, ...]
    added_tokens: tuple[str, ...]
    eos: str
    pad: str
    bos: str | None
    extra_eos: tuple[str, ...]
    generation: dict[str, Any] = field(default_factory=dict)
    tokenizer_extras: dict[str, Any] = field(default_factory=dict)


QWQ_32B = TinySpec(
    template="qwq-32b",
    special_tokens=("<|endoftext|>", "<|im_start|>", QWQ_EOS),
    added_tokens=(
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
        "<think>",
        "</think>",
    ),
    eos=QWQ_EOS,
    pad="<|endoftext|>",
    bos=None,
    # QwQ's generation_config stops on either end marker.
    extra_eos=("<|endoftext|>",),
    generation={"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 40},
)

DEEPSEEK_R1_DISTILL_QWEN_32B = TinySpec(
    template="deepseek-r1-distill-qwen-32b",
    special_tokens=(R1_BOS, R1_EOS),
    added_tokens=(
        "<｜User｜>",
        "<｜Assistant｜>",
        "<|EOT|>",
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
    ),
    eos=R1_EOS,
    pad=R1_EOS,
    bos=R1_BOS,
    extra_eos=(),
    generation={"do_sample": True, "temperature": 0.6, "top_p": 0.95},
    # The chat template writes the bos token itself; adding another would double it.
    tokenizer_extras={"add_bos_token": False, "add_eos_token": False},
)

SPECS: dict[str, TinySpec] = {
    "tiny-qwq-32b": QWQ_32B,
    "tiny-deepseek-r1-distill-qwen-32b": DEEPSEEK_R1_DISTILL_QWEN_32B,
}
"""Stand-ins by `engine.config.BuiltinCheckpoint` name."""


def build_tiny_checkpoint(spec: TinySpec, out_dir: Path) -> None:
    """Write a complete checkpoint for `spec` into the existing, empty directory `out_dir`.

    Deterministic: the same spec, template and library versions give the same bytes. Raises
    `chat_templates.renderer.ChatTemplateMissingError` if the chat template is missing.
    """
    chat_template = builtin_source(spec.template)
    tokenizer = _build_tokenizer(spec, chat_template)
    model = _build_model(spec, tokenizer)
    _save_tokenizer(tokenizer, spec, out_dir)
    model.save_pretrained(out_dir)


def _build_tokenizer(spec: TinySpec, chat_template: str) -> Any:
    """A transformers fast tokenizer around a freshly trained byte-level BPE."""
    from transformers import PreTrainedTokenizerFast

    backend = train_bpe(spec.special_tokens, spec.added_tokens)
    named = {"bos_token": spec.bos, "eos_token": spec.eos, "pad_token": spec.pad}
    # Listing the remaining special tokens puts them in all_special_ids, which some
    # detokenizers consult instead of the backend's `special` flag.
    extra = [token for token in spec.special_tokens if token not in named.values()]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **named,
        unk_token=None,
        extra_special_tokens=extra,
        chat_template=chat_template,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


def _save_tokenizer(tokenizer: Any, spec: TinySpec, out_dir: Path) -> None:
    """Save with the chat template inside tokenizer_config.json, as the real checkpoints do.

    The generic wrapper records itself as "TokenizersBackend", a class transformers 4.x lacks;
    the real files name "Qwen2Tokenizer", which is also what transformers 5 picks for a qwen2
    model whatever the file says. Keys the wrapper drops (`add_bos_token`) are restored too.
    """
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update({"tokenizer_class": "Qwen2Tokenizer", **spec.tokenizer_extras})
    config_path.write_text(
        json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )


def _build_model(spec: TinySpec, tokenizer: Any) -> Any:
    """A seeded random `Qwen2ForCausalLM` in bfloat16, with ids taken from `tokenizer`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    def token_id(token: str | None) -> int | None:
        return None if token is None else int(tokenizer.convert_tokens_to_ids(token))

    eos_id = token_id(spec.eos)
    # Real Qwen configs name <|endoftext|> as bos even where the tokenizer has none.
    bos_id = token_id(spec.bos if spec.bos is not None else spec.pad)
    config = Qwen2Config(
        vocab_size=len(tokenizer),  # exact, so the model cannot emit an id with no token
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64: the vLLM CPU attention kernel rejects 16
        num_key_value_heads=1,
        max_position_embeddings=MAX_POSITIONS,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        rms_norm_eps=1e-5,
        use_sliding_window=False,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=token_id(spec.pad),
        dtype="bfloat16",
    )
    # fork_rng: seed locally without disturbing the caller's global torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Qwen2ForCausalLM(config)
    model = model.to(torch.bfloat16).eval()
    eos_ids = [eos_id, *(token_id(token) for token in spec.extra_eos)]
    model.generation_config = GenerationConfig(
        bos_token_id=bos_id,
        eos_token_id=eos_ids if len(eos_ids) > 1 else eos_id,
        pad_token_id=token_id(spec.pad),
        **spec.generation,
    )
    return model
