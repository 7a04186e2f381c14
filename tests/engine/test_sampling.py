"""Workers AI sampling values mapped onto vLLM's accepted ranges."""

from typing import Any

import pytest

from engine.sampling import sampling_kwargs
from engine.types import GenerationParams


def kwargs(defaults: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"max_tokens": 256, "temperature": 0.6, **params}
    return sampling_kwargs(GenerationParams(**values), defaults or {})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"temperature": 5.0}, {"temperature": 2.0}),
        ({"temperature": 2.0}, {"temperature": 2.0}),
        ({"temperature": 0.0}, {"temperature": 0.0}),
        ({"top_p": 0.0}, {"top_p": 1e-6}),
        ({"top_p": 2.0}, {"top_p": 1.0}),
        ({"top_p": 0.3}, {"top_p": 0.3}),
        ({"repetition_penalty": 0.0}, {"repetition_penalty": 0.01}),
        ({"repetition_penalty": 1.7}, {"repetition_penalty": 1.7}),
        ({"frequency_penalty": -2.0}, {"frequency_penalty": -2.0}),
        ({"seed": 9999999999}, {"seed": 9999999999}),
        ({"top_k": 50}, {"top_k": 50}),
    ],
    ids=lambda value: str(value),
)
def test_values_are_mapped_into_vllm_ranges(
    params: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = kwargs(**params)

    for name, value in expected.items():
        assert result[name] == value


def test_max_tokens_is_always_set() -> None:
    assert kwargs()["max_tokens"] == 256


def test_unset_parameters_fall_back_to_the_checkpoint_defaults() -> None:
    result = kwargs({"top_p": 0.95, "top_k": 40, "temperature": 0.7}, top_k=5)

    assert result["top_p"] == 0.95
    assert result["top_k"] == 5
    assert result["temperature"] == 0.6  # Workers AI always sends its own default


def test_nothing_unset_is_invented() -> None:
    assert set(kwargs()) == {"max_tokens", "temperature"}
