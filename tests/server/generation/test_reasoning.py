"""Splitting streamed output at `</think>`, however the chunks fall."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.generation.reasoning import (
    ReasoningSplitter,
    Segment,
    partial_suffix,
    split_reasoning,
)

OUTPUT = "I should greet.\n</think>\n\nHello!"


def chunked(text: str, size: int) -> list[str]:
    return [text[index : index + size] for index in range(0, len(text), size)]


def run(chunks: list[str], *, in_reasoning: bool = True) -> list[Segment]:
    splitter = ReasoningSplitter(in_reasoning=in_reasoning)
    segments = [segment for chunk in chunks for segment in splitter.feed(chunk)]
    return segments + splitter.finish()


def joined(segments: list[Segment], kind: str) -> str:
    return "".join(segment.text for segment in segments if segment.kind == kind)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 100], ids=lambda size: f"chunks-of-{size}")
def test_any_chunking_finds_the_marker(size: int) -> None:
    segments = run(chunked(OUTPUT, size))

    assert joined(segments, "reasoning") == "I should greet.\n"
    assert joined(segments, "end") == "</think>"
    assert joined(segments, "content") == "\n\nHello!"
    assert "".join(segment.text for segment in segments) == OUTPUT


def test_no_marker_is_all_reasoning() -> None:
    segments = run(chunked("still thinking </thi", 4))

    assert joined(segments, "reasoning") == "still thinking </thi"
    assert joined(segments, "content") == ""


def test_outside_reasoning_everything_is_content() -> None:
    segments = run(["a</think>b"], in_reasoning=False)

    assert segments == [Segment("content", "a</think>b")]


def test_only_the_first_marker_ends_reasoning() -> None:
    segments = run(["x</think>y</think>z"])

    assert joined(segments, "content") == "y</think>z"


@pytest.mark.parametrize(
    ("text", "in_reasoning", "expected"),
    [
        (OUTPUT, True, ("I should greet.\n", "\n\nHello!")),
        ("thinking", True, ("thinking", "")),
        ("answer", False, ("", "answer")),
    ],
    ids=["split", "unfinished", "no-reasoning"],
)
def test_split_whole_text(text: str, in_reasoning: bool, expected: tuple[str, str]) -> None:
    assert split_reasoning(text, in_reasoning=in_reasoning) == expected


def longest_partial_suffix(text: str, marker: str) -> int:
    """The definition, tried length by length."""
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:length]):
            return length
    return 0


@given(
    text=st.text(alphabet="</tink>ax", max_size=24),
    marker=st.sampled_from(["</think>", "<tool_call>", "aab", "aaa", "<"]),
)
def test_partial_suffix_is_the_longest_tail_that_starts_the_marker(text: str, marker: str) -> None:
    assert partial_suffix(text, marker) == longest_partial_suffix(text, marker)
