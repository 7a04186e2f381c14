"""The remote model's tokenizer and checkpoint facts, loaded here: the upstream only generates.

    load_checkpoint("tiny-qwq-32b", cache_dir)  a builtin, prepared in cache_dir on first use
    load_checkpoint("Qwen/QwQ-32B", cache_dir)  a Hugging Face id (its cache, or the hub)
    load_checkpoint("/models/qwq", cache_dir)   a local directory

Blocking (files, maybe a download, a builtin's first build): call it off the event loop.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import BUILTIN_CHECKPOINTS
from engine.errors import EngineStartError
from engine.token_bytes import NO_FLOOR, TokenFloor, token_floor
from engine.types import CheckpointInfo, CheckpointTemplate

logger = logging.getLogger(__name__)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Checkpoint:
    """A tokenizer (transformers) and what the server needs to know of its checkpoint.

    `think_open` / `think_close` are the ids of the reasoning tokens, when the vocabulary has
    them as single tokens (both served models do). `floor` bounds a text's token count from
    below without tokenizing it (`engine.token_bytes`)."""

    source: str
    tokenizer: Any
    info: CheckpointInfo
    think_open: int | None
    think_close: int | None
    floor: TokenFloor = NO_FLOOR

    def template(self) -> CheckpointTemplate | None:
        source = getattr(self.tokenizer, "chat_template", None)
        if not isinstance(source, str):
            return None
        return CheckpointTemplate(
            source=source,
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
        )

    def reasoning_ended(self, prompt_token_ids: list[int]) -> bool:
        """Whether the prompt has closed its reasoning: its last reasoning token is `</think>`.
        The rule of vLLM's `deepseek_r1` reasoning parser (`is_reasoning_end`), which decides
        in-process whether a grammar applies from the first token."""
        for token in reversed(prompt_token_ids):
            if token == self.think_open:
                return False
            if token == self.think_close:
                return True
        return False


def load_checkpoint(tokenizer: str, cache_dir: Path) -> Checkpoint:
    """Load `tokenizer` (a builtin checkpoint name, a Hugging Face id or a local directory) and
    its config.json; raises EngineStartError with what went wrong."""
    from transformers import AutoConfig, AutoTokenizer

    source = tokenizer
    if tokenizer in BUILTIN_CHECKPOINTS:
        from engine.builtin.checkpoints import prepare_checkpoint

        source = str(prepare_checkpoint(tokenizer, cache_dir))
    try:
        loaded = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise EngineStartError(f"could not load the tokenizer {tokenizer!r}: {error}") from None
    try:
        config = AutoConfig.from_pretrained(source)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        info = CheckpointInfo.from_hf_config(source, text_config.to_dict())
    except (OSError, ValueError, KeyError) as error:
        raise EngineStartError(
            f"could not read the model config (config.json) of {tokenizer!r}, which must be the "
            f"upstream's checkpoint: {error}"
        ) from None
    return Checkpoint(
        source=source,
        tokenizer=loaded,
        info=info,
        think_open=_single_token(loaded, THINK_OPEN),
        think_close=_single_token(loaded, THINK_CLOSE),
        floor=token_floor(loaded),
    )


def _single_token(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        return None
    token: int = ids[0]
    return token
