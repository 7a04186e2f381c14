"""Find where a reasoning model's thinking ends (`</think>`) in streamed text.

Both models' chat templates open the reasoning in the prompt (`<think>\\n`), so their output
starts inside it, with no opening tag. The closing tag may arrive split across chunks.
"""

from dataclasses import dataclass
from typing import Literal

END = "</think>"

SegmentKind = Literal["reasoning", "end", "content"]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    text: str


class ReasoningSplitter:
    """Splits streamed text into reasoning, the `</think>` marker, and content, in order."""

    def __init__(self, *, in_reasoning: bool) -> None:
        self._in_reasoning = in_reasoning
        self._held = ""

    def feed(self, text: str) -> list[Segment]:
        if not self._in_reasoning:
            return [Segment("content", text)] if text else []
        buffer = self._held + text
        index = buffer.find(END)
        if index >= 0:
            self._in_reasoning = False
            self._held = ""
            segments = [Segment("reasoning", buffer[:index]), Segment("end", END)]
            segments.append(Segment("content", buffer[index + len(END) :]))
            return [segment for segment in segments if segment.text]
        # Hold back a tail that could be the start of `</think>`.
        keep = partial_suffix(buffer, END)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        emitted = buffer[: len(buffer) - keep]
        return [Segment("reasoning", emitted)] if emitted else []

    def finish(self) -> list[Segment]:
        held, self._held = self._held, ""
        if not held:
            return []
        return [Segment("reasoning" if self._in_reasoning else "content", held)]


def split_reasoning(text: str, *, in_reasoning: bool) -> tuple[str, str]:
    """(reasoning, content) of a whole output; the marker itself belongs to neither."""
    if not in_reasoning:
        return "", text
    reasoning, marker, content = text.partition(END)
    return (reasoning, content) if marker else (text, "")


def partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `marker`.

    Such a suffix starts with the marker's first character within its last `len(marker) - 1`
    characters: only those places are tried (it runs for every token, and most have none)."""
    index = text.find(marker[0], max(len(text) - len(marker) + 1, 0))
    while index >= 0:
        if marker.startswith(text[index:]):
            return len(text) - index
        index = text.find(marker[0], index + 1)
    return 0
