"""A floor under a prompt's token count, from the bytes of its text alone: no tokenizing.

    floor = token_floor(tokenizer)   once per tokenizer (reads its whole vocabulary, ~10-100 ms)
    floor.fewest_tokens(prompt)      per prompt (~2 ms a MB): never more than len(encode(prompt))

Why it holds, for a byte-level BPE (GPT-2, Qwen2, SmolLM2). The pre-tokenizer turns every byte
of the text into one character of a 256-character alphabet, and each token the model emits is a
run of those characters: it stands for as many bytes of the text as its string has characters.
An added token (`<|im_start|>`, `<think>`) is cut out of the text before that and stands for the
bytes of its content. Give each byte value b the weight 1 / longest[b], where longest[b] is the
byte length of the longest token (vocabulary or added) holding b: a token of n bytes holds only
bytes whose longest is n or more, so its bytes weigh 1 at most, and the text's bytes, each
inside one token, weigh no more than the tokens number. The weights sum to that floor. Letters
weigh about 1/20 (no token holding one is longer), spaces about 1/80 (runs of spaces are tokens),
digits 1 in Qwen2 (each digit is its own token): the floor is some 4-6 times under the true count
of prose or code, where one bound for all bytes (1 / the longest token) would be 20-30 times.
A byte with no token of its own is skipped by the model (SmolLM2 has none for some control
bytes), so it weighs 0.

That is true only of tokenizers that neither drop nor shrink text, so `floor_of_spec` checks the
tokenizer's parts against what it knows and gives no floor (`fewest_tokens` is then 0) for
anything else: a normalizer other than NFC, a pre-tokenizer that removes what it splits on, an
added token that swallows the whitespace beside it (`lstrip` / `rstrip`), a model that is not a
byte-level BPE. NFC can shrink text (three jamo into one Hangul syllable), so under an NFC
normalizer the floor holds for text already in NFC, which the normalizer leaves as it is (and so
every piece of it between added tokens); other text gets 0. The floor counts no special tokens
(`add_special_tokens=False`, as the engines encode prompts).
"""

import json
import logging
import math
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy

logger = logging.getLogger(__name__)

# Pre-tokenizers that keep every character of the text (they split it, or map its bytes);
# Split and Punctuation only while they do not remove what they split on.
_KEEPING_PRE_TOKENIZERS = {"ByteLevel", "Split", "Digits", "Punctuation"}


@dataclass(frozen=True, slots=True)
class TokenFloor:
    """The floor of one tokenizer.

    `longest[b]`: the byte length of the longest token holding byte value b (0: the byte may be
    skipped); None: no sound floor for this tokenizer. `nfc`: the tokenizer NFC-normalizes.
    """

    longest: tuple[int, ...] | None
    nfc: bool = False

    @property
    def max_token_bytes(self) -> int | None:
        """The most bytes of text one token stands for."""
        return None if self.longest is None else max(self.longest)

    def fewest_tokens(self, text: str) -> int:
        """A lower bound of len(encode(text, add_special_tokens=False)); 0 when none is known."""
        if self.longest is None or not text:
            return 0
        if self.nfc and not unicodedata.is_normalized("NFC", text):
            return 0
        # surrogatepass: a lone surrogate (JSON allows "\ud800") counts its 3 bytes, no error.
        data = text.encode("utf-8", "surrogatepass")
        counts = numpy.bincount(numpy.frombuffer(data, dtype=numpy.uint8), minlength=256)
        by_length: Counter[int] = Counter()
        for byte, count in enumerate(counts.tolist()):
            if count and self.longest[byte]:
                by_length[self.longest[byte]] += count
        if not by_length:
            return 0
        # The sum of count / length, exactly (floats could round it up past the true count).
        denominator = math.lcm(*by_length)
        numerator = sum(count * (denominator // length) for length, count in by_length.items())
        return -(-numerator // denominator)


NO_FLOOR = TokenFloor(None)


def token_floor(tokenizer: Any) -> TokenFloor:
    """The floor of a transformers fast tokenizer (or a `tokenizers.Tokenizer`), read from its
    live backend; NO_FLOOR for a tokenizer with no such backend (mistral, slow tokenizers)."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    to_str = getattr(backend, "to_str", None)
    if not callable(to_str):
        return NO_FLOOR
    try:
        spec = json.loads(to_str())
        return floor_of_spec(spec) if isinstance(spec, dict) else NO_FLOOR
    except Exception as error:  # the floor only saves time: never worth failing a start over
        logger.warning("no token floor: the tokenizer could not be read (%r)", error)
        return NO_FLOOR


def floor_of_spec(spec: Mapping[str, Any]) -> TokenFloor:
    """The floor of a tokenizer from its `tokenizer.json` document."""
    normalizers = _normalizer_types(spec.get("normalizer"))
    if normalizers is None or not set(normalizers) <= {"NFC"}:
        return NO_FLOOR
    longest = longest_tokens(spec)
    if longest is None:
        return NO_FLOOR
    return TokenFloor(longest, nfc=bool(normalizers))


def longest_tokens(spec: Mapping[str, Any]) -> tuple[int, ...] | None:
    """For each byte value, the byte length of the longest token holding it (0 for a byte the
    model has no token for); None unless the tokenizer is a byte-level BPE that keeps every
    byte (see the module docstring)."""
    model = spec.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        return None
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None  # a byte would then be looked up under another name
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not _byte_level_pre_tokenizer(spec.get("pre_tokenizer")):
        return None
    byte_of = {character: byte for byte, character in enumerate(byte_alphabet())}
    longest = [0] * 256
    for length, characters in _characters_by_length(vocab, frozenset(byte_of)).items():
        for character in characters:
            longest[byte_of[character]] = max(longest[byte_of[character]], length)
    for added in spec.get("added_tokens") or []:
        if not isinstance(added, dict) or not isinstance(added.get("content"), str):
            return None
        if added.get("lstrip") or added.get("rstrip"):
            return None  # it takes any run of whitespace beside it into its one token
        content: str = added["content"]
        # Matched in the text as written, or (normalized=True) as the normalizer left it.
        for form in {content, unicodedata.normalize("NFC", content)}:
            data = form.encode("utf-8", "surrogatepass")
            for byte in set(data):
                longest[byte] = max(longest[byte], len(data))
    # A byte whose character is not itself a token is dropped by the model where it stands
    # alone, whatever longer tokens hold it.
    for byte, character in enumerate(byte_alphabet()):
        if character not in vocab:
            longest[byte] = 0
    if not any(longest):
        return None
    return tuple(longest)


@cache
def byte_alphabet() -> tuple[str, ...]:
    """The character the byte-level pre-tokenizer writes for each byte value: GPT-2's
    `bytes_to_unicode` (the set `tokenizers.pre_tokenizers.ByteLevel.alphabet()` returns).
    Printable Latin-1 bytes stand for themselves; the others, in order, for chr(256 + n)."""
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    shifted = iter(range(256, 512))
    return tuple(chr(byte if byte in printable else next(shifted)) for byte in range(256))


def _characters_by_length(
    vocab: Mapping[str, Any], alphabet: frozenset[str]
) -> dict[int, set[str]]:
    """For each token length, the characters of the tokens that long. Tokens with a character
    outside the alphabet are left out: the pre-tokenizer writes only the alphabet, so the model
    never emits them. A whole vocabulary (150k tokens) takes a few sets, not a loop per token."""
    by_length: dict[int, list[str]] = {}
    for token in vocab:
        if isinstance(token, str):
            by_length.setdefault(len(token), []).append(token)
    characters: dict[int, set[str]] = {}
    for length, tokens in by_length.items():
        present = set("".join(tokens))
        if not present <= alphabet:
            present = set("".join(token for token in tokens if set(token) <= alphabet))
        characters[length] = present
    return characters


def _normalizer_types(normalizer: Any) -> list[str] | None:
    """The normalizers applied, in order ([] for none); None for one this module cannot read."""
    if normalizer is None:
        return []
    if not isinstance(normalizer, dict):
        return None
    kind = normalizer.get("type")
    if kind != "Sequence":
        return [kind] if isinstance(kind, str) else None
    types: list[str] = []
    for part in normalizer.get("normalizers") or []:
        inner = _normalizer_types(part)
        if inner is None:
            return None
        types.extend(inner)
    return types


def _byte_level_pre_tokenizer(pre_tokenizer: Any) -> bool:
    """Whether the pre-tokenizer maps every byte into the alphabet and drops nothing."""
    parts = _pre_tokenizer_parts(pre_tokenizer)
    if parts is None or not any(part.get("type") == "ByteLevel" for part in parts):
        return False
    return all(
        part.get("type") in _KEEPING_PRE_TOKENIZERS and part.get("behavior") != "Removed"
        for part in parts
    )


def _pre_tokenizer_parts(pre_tokenizer: Any) -> list[dict[str, Any]] | None:
    if not isinstance(pre_tokenizer, dict):
        return None
    if pre_tokenizer.get("type") != "Sequence":
        return [pre_tokenizer]
    parts: list[dict[str, Any]] = []
    for part in pre_tokenizer.get("pretokenizers") or []:
        inner = _pre_tokenizer_parts(part)
        if inner is None:
            return None
        parts.extend(inner)
    return parts
