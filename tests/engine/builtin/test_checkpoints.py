"""Built-in checkpoints: what they contain, and how prepare_checkpoint caches and locks them."""

import json
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from chat_templates.renderer import builtin_source
from engine.builtin import checkpoints, tiny_models
from engine.builtin.checkpoints import FORMAT_VERSION, prepare_checkpoint
from engine.builtin.tiny_models import SPECS, TinySpec
from engine.config import BuiltinCheckpoint

TINY: list[BuiltinCheckpoint] = ["tiny-qwq-32b", "tiny-deepseek-r1-distill-qwen-32b"]
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)
UNICODE_SAMPLES = (
    "Hello, world!  Two  spaces,\ttabs\nand newlines\r\n",
    "naïve café, Straße, żółć, Ελληνικά, Русский, עברית, العربية, हिन्दी",
    "中文，日本語のテキスト，한국어 텍스트",
    "emoji 😀👩‍💻🏳️‍🌈🇫🇷 and symbols ∑∫√∞ ≤≥ €£¥",
    "def f(x):\n    return {'a': [1, 2, 3]}  # 12345678901234567890",
    "rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ \U0010fffd \x00\x7f",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny checkpoint, built once for the module's read-only tests."""
    cache = tmp_path_factory.mktemp("checkpoints")
    return {name: prepare_checkpoint(name, cache, progress=False) for name in TINY}


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("name", TINY)
def test_tiny_checkpoint_is_a_complete_versioned_directory(
    built: dict[str, Path], name: str
) -> None:
    path = built[name]
    assert path.name.startswith(f"{name}-v{FORMAT_VERSION}-")
    for filename in FILES:
        assert (path / filename).is_file(), filename
        assert (path / filename).stat().st_mode & 0o444 == 0o444, filename
    assert not [p for p in path.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("name", TINY)
def test_tiny_config_has_the_serving_shape(built: dict[str, Path], name: str) -> None:
    config = _json(built[name] / "config.json")
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] == 64
    assert config["max_position_embeddings"] == 131072
    assert config["tie_word_embeddings"] is True
    assert config["dtype"] == "bfloat16"
    assert config["vocab_size"] == len(_tokenizer(built[name]))
    assert 2000 <= config["vocab_size"] <= 4000


@pytest.mark.parametrize("name", TINY)
def test_special_and_added_tokens_are_single_ids(built: dict[str, Path], name: str) -> None:
    spec = SPECS[name]
    tokenizer = _tokenizer(built[name])
    for token in (*spec.special_tokens, *spec.added_tokens):
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id], token
        # Also when glued to ordinary text on both sides.
        assert token_id in tokenizer.encode(f"ab{token}cd", add_special_tokens=False), token


@pytest.mark.parametrize("name", TINY)
def test_think_tags_survive_skipping_special_tokens(built: dict[str, Path], name: str) -> None:
    spec = SPECS[name]
    tokenizer = _tokenizer(built[name])
    text = "<think>Paris, surely.</think>The capital is Paris."
    ids = tokenizer.encode("".join(spec.special_tokens) + text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(ids) == "".join(spec.special_tokens) + text


@pytest.mark.parametrize("name", TINY)
def test_tokens_have_the_real_models_roles(built: dict[str, Path], name: str) -> None:
    spec = SPECS[name]
    tokenizer = _tokenizer(built[name])
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        spec.bos,
        spec.eos,
        spec.pad,
    )
    special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    added = {t.content for t in tokenizer.added_tokens_decoder.values() if not t.special}
    assert special == set(spec.special_tokens)
    assert added == set(spec.added_tokens)
    assert set(spec.special_tokens) <= set(tokenizer.all_special_tokens)
    # No bos is prepended: the chat templates write it where the real models expect it.
    assert tokenizer.encode("hi") == tokenizer.encode("hi", add_special_tokens=False)


@pytest.mark.parametrize("name", TINY)
def test_config_and_generation_config_ids_match_the_tokenizer(
    built: dict[str, Path], name: str
) -> None:
    spec = SPECS[name]
    tokenizer = _tokenizer(built[name])
    config = _json(built[name] / "config.json")
    generation = _json(built[name] / "generation_config.json")
    eos_id = tokenizer.eos_token_id
    assert config["eos_token_id"] == eos_id
    assert config["pad_token_id"] == tokenizer.pad_token_id
    if spec.bos is not None:
        assert config["bos_token_id"] == generation["bos_token_id"] == tokenizer.bos_token_id
    extra = [tokenizer.convert_tokens_to_ids(token) for token in spec.extra_eos]
    assert generation["eos_token_id"] == ([eos_id, *extra] if extra else eos_id)
    assert {key: generation[key] for key in spec.generation} == spec.generation
    assert generation["do_sample"] is True
    assert generation["temperature"] == 0.6
    assert generation["top_p"] == 0.95


def test_qwq_generation_config_matches_the_real_one(built: dict[str, Path]) -> None:
    tokenizer = _tokenizer(built["tiny-qwq-32b"])
    generation = _json(built["tiny-qwq-32b"] / "generation_config.json")
    ids = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert generation["eos_token_id"] == ids
    assert generation["top_k"] == 40
    assert tokenizer.bos_token is None


def test_r1_tokenizer_config_does_not_add_bos(built: dict[str, Path]) -> None:
    tokenizer_config = _json(built["tiny-deepseek-r1-distill-qwen-32b"] / "tokenizer_config.json")
    assert tokenizer_config["add_bos_token"] is False


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_nfc_text_round_trips(built: dict[str, Path], name: str, text: str) -> None:
    tokenizer = _tokenizer(built[name])
    assert unicodedata.is_normalized("NFC", text)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("name", TINY)
def test_tokenizer_json_and_transformers_agree(built: dict[str, Path], name: str) -> None:
    """transformers loads a qwen2 tokenizer as Qwen2Tokenizer, which rebuilds the pipeline
    around the file's vocabulary; that must tokenize exactly like tokenizer.json itself."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(built[name] / "tokenizer.json"))
    tokenizer = _tokenizer(built[name])
    text = " ".join(UNICODE_SAMPLES) + "".join(SPECS[name].added_tokens) + "e\u0301"
    assert tokenizer.encode(text, add_special_tokens=False) == raw.encode(text).ids


@pytest.mark.parametrize("name", TINY)
def test_chat_template_is_the_projects(built: dict[str, Path], name: str) -> None:
    tokenizer_config = _json(built[name] / "tokenizer_config.json")
    assert tokenizer_config["chat_template"] == builtin_source(SPECS[name].template)
    assert _tokenizer(built[name]).chat_template == tokenizer_config["chat_template"]


@pytest.mark.parametrize("name", TINY)
def test_model_runs_a_forward_pass(built: dict[str, Path], name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = _tokenizer(built[name])
    model = AutoModelForCausalLM.from_pretrained(built[name])
    assert model.dtype == torch.bfloat16
    ids = torch.tensor([tokenizer.encode("What is the capital of France?")])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    generated = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert ids.shape[1] < generated.shape[1] <= ids.shape[1] + 4


def test_second_call_reuses_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=False)
    mtimes = {path: path.stat().st_mtime_ns for path in first.iterdir()}

    def must_not_build(*args: object) -> None:
        raise AssertionError("rebuilt a cached checkpoint")

    monkeypatch.setattr(checkpoints, "build_tiny_checkpoint", must_not_build)
    second = prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=False)
    assert second == first
    assert {path: path.stat().st_mtime_ns for path in second.iterdir()} == mtimes


def test_builds_are_deterministic(tmp_path: Path) -> None:
    one = prepare_checkpoint("tiny-deepseek-r1-distill-qwen-32b", tmp_path / "a", progress=False)
    two = prepare_checkpoint("tiny-deepseek-r1-distill-qwen-32b", tmp_path / "b", progress=False)
    assert one.name == two.name
    for filename in FILES:
        assert (one / filename).read_bytes() == (two / filename).read_bytes(), filename


def test_concurrent_callers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    real_build = tiny_models.build_tiny_checkpoint

    def counting_build(spec: TinySpec, out_dir: Path) -> None:
        builds.append(spec.template)
        real_build(spec, out_dir)

    monkeypatch.setattr(checkpoints, "build_tiny_checkpoint", counting_build)
    results: list[Path] = []

    def call() -> None:
        results.append(prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=False))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert len(set(results)) == 1
    assert len(builds) == 1


def test_failed_build_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_build(spec: TinySpec, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoints, "build_tiny_checkpoint", broken_build)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=False)
    assert [path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock")] == []


def test_leftovers_of_a_crashed_build_are_removed(tmp_path: Path) -> None:
    target = prepare_checkpoint("tiny-qwq-32b", tmp_path / "first", progress=False)
    leftover = tmp_path / f".{target.name}.partial-crashed"
    (leftover / "sub").mkdir(parents=True)
    assert prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=False).is_dir()
    assert not leftover.exists()


def test_progress_announces_what_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prepare_checkpoint("tiny-qwq-32b", tmp_path, progress=True)
    assert f"Preparing built-in checkpoint 'tiny-qwq-32b' in {path}" in capsys.readouterr().err


def test_importing_the_module_loads_no_heavy_libraries() -> None:
    code = (
        "import sys, engine.builtin.checkpoints\n"
        "heavy = {'torch', 'transformers', 'vllm', 'tokenizers', 'fastapi'} & set(sys.modules)\n"
        "assert not heavy and not any(m.startswith('server') for m in sys.modules), heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_smollm2_converts_and_answers(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = prepare_checkpoint("smollm2-135m-instruct", tmp_path, progress=False)
    for filename in FILES:
        assert (path / filename).is_file(), filename
    tokenizer_config = _json(path / "tokenizer_config.json")
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert "quantization_config" not in _json(path / "config.json")

    tokenizer = _tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.bfloat16
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
    output = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
