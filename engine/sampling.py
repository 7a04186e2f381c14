"""Map Workers AI sampling parameters onto what vLLM accepts.

Workers AI's published ranges are wider than vLLM's. Values vLLM would reject are moved to the
nearest value it accepts:

| parameter          | Workers AI range       | vLLM accepts | mapping                        |
|--------------------|------------------------|--------------|--------------------------------|
| temperature        | 0 to 5                 | 0 to 2       | above 2 becomes 2              |
| top_p              | 0 to 2 (QwQ)           | (0, 1]       | 0 becomes 1e-6, above 1 is 1   |
| repetition_penalty | 0 to 2                 | above 0      | 0 becomes 0.01                 |

Parameters the request leaves unset fall back to the checkpoint's `generation_config.json`
(as vLLM's own server does), then to vLLM's neutral defaults.
"""

from typing import Any

from engine.types import GenerationParams

MAX_TEMPERATURE = 2.0
MIN_TOP_P = 1e-6
MIN_REPETITION_PENALTY = 0.01

# The generation_config fields a request may fall back to.
DEFAULTABLE = ("top_p", "top_k", "repetition_penalty", "frequency_penalty", "presence_penalty")


def sampling_kwargs(params: GenerationParams, model_defaults: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams`, within vLLM's accepted ranges."""
    kwargs: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": min(params.temperature, MAX_TEMPERATURE),
    }
    for name in DEFAULTABLE:
        value = getattr(params, name)
        if value is None:
            value = model_defaults.get(name)
        if value is not None:
            kwargs[name] = value
    if "top_p" in kwargs:
        kwargs["top_p"] = min(max(kwargs["top_p"], MIN_TOP_P), 1.0)
    if "repetition_penalty" in kwargs:
        kwargs["repetition_penalty"] = max(kwargs["repetition_penalty"], MIN_REPETITION_PENALTY)
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs
