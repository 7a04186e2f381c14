"""Our chat templates against the official ones, and the renderer's own contract.

The official templates are test data in ../shared/reference/chat_templates (beside the repo);
they are rendered the reference way, by transformers' `apply_chat_template` on a tiny
tokenizer that carries each model's real special tokens.
"""

import hashlib
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jinja2
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from chat_templates import ChatTemplate, ChatTemplateError
from tests.support.conversations import (
    CALL_BARE,
    CALL_DICT_ARGS,
    CALL_STRING_ARGS,
    CONVERSATIONS,
    QWQ,
    R1,
    REJECTED,
    SEARCH_TOOL_BARE,
    TEMPLATES,
    WEATHER_TOOL,
    Conversation,
    Message,
    Rejected,
    Tool,
)
from tests.support.paths import OFFICIAL_TEMPLATES, REPO

OFFICIAL_DIR = OFFICIAL_TEMPLATES

# The verified copies, as listed in SOURCES.md beside them.
OFFICIAL_SHA256 = {
    QWQ: "16488ad69d85833e5f66c50174f39834b688343337e9337f018deaa21b354117",
    R1: "56a1447ad31926fdc21fb07e56e5642bd9c850c4f52d8c8af7bbe5f079a84f5f",
}

# DeepSeek's tokens really are spelt with U+FF5C FULLWIDTH VERTICAL LINE and U+2581.
R1_BOS = "<｜begin▁of▁sentence｜>"
R1_EOS = "<｜end▁of▁sentence｜>"
R1_PROMPT = "<｜Assistant｜><think>\n"
R1_USER = "<｜User｜>"

# Special tokens from each model's tokenizer_config.json (see SOURCES.md there).
SPECIAL_TOKENS: dict[str, dict[str, str]] = {
    QWQ: {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    R1: {"bos_token": R1_BOS, "eos_token": R1_EOS, "pad_token": R1_EOS},
}

# What the official templates raise on bad data: jinja2 errors and Python's own.
OFFICIAL_ERRORS = (jinja2.TemplateError, TypeError)

Render = Callable[[str, list[Message], list[Tool] | None, bool], str]


@pytest.fixture(scope="module")
def official() -> Render:
    """Render with the official template through transformers, the reference implementation."""
    if not OFFICIAL_DIR.is_dir():
        pytest.skip(f"official templates not found at {OFFICIAL_DIR} (../shared beside the repo)")
    raw = {name: (OFFICIAL_DIR / f"{name}.jinja").read_bytes() for name in TEMPLATES}
    for name, data in raw.items():
        assert hashlib.sha256(data).hexdigest() == OFFICIAL_SHA256[name], f"{name} was edited"
    sources = {name: data.decode("utf-8") for name, data in raw.items()}
    tokenizers = {
        name: PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
            **SPECIAL_TOKENS[name],
        )
        for name in TEMPLATES
    }

    def render(
        name: str, messages: list[Message], tools: list[Tool] | None, generation_prompt: bool
    ) -> str:
        # transformers' annotation wants list[dict | Callable]; list is invariant.
        tool_list: list[dict[str, Any] | Callable[..., Any]] | None = (
            None if tools is None else [*tools]
        )
        text = tokenizers[name].apply_chat_template(
            messages,
            tools=tool_list,
            chat_template=sources[name],
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
        assert isinstance(text, str)
        return text

    return render


def ours(name: str, messages: list[Message], tools: list[Tool] | None, prompt: bool) -> str:
    return ChatTemplate.builtin(name).render(messages, tools=tools, add_generation_prompt=prompt)


# --- our templates == official templates ---------------------------------------------------

CASES = [
    pytest.param(name, conversation, id=f"{name}-{conversation.id}")
    for conversation in CONVERSATIONS
    for name in TEMPLATES
]


def test_corpus_is_big_and_ids_unique() -> None:
    assert len(CONVERSATIONS) >= 30
    ids = [c.id for c in CONVERSATIONS] + [r.id for r in REJECTED]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("name", "conversation"), CASES)
def test_same_as_official(name: str, conversation: Conversation, official: Render) -> None:
    args = (conversation.messages, conversation.tools, conversation.add_generation_prompt)
    if name in conversation.official_crashes:
        with pytest.raises(OFFICIAL_ERRORS):
            official(name, *args)
        with pytest.raises(ChatTemplateError):
            ours(name, *args)
    else:
        assert ours(name, *args) == official(name, *args)


@pytest.mark.parametrize("rejected", REJECTED, ids=[r.id for r in REJECTED])
def test_rejected_with_clear_message(rejected: Rejected) -> None:
    with pytest.raises(ChatTemplateError) as caught:
        ours(rejected.template, rejected.messages, rejected.tools, True)
    assert rejected.error in str(caught.value)


@pytest.mark.parametrize("rejected", REJECTED, ids=[r.id for r in REJECTED])
def test_official_on_rejected(rejected: Rejected, official: Render) -> None:
    """Documents why we reject: the official template crashes, or renders regardless."""
    args = (rejected.messages, rejected.tools, True)
    if rejected.official == "crashes":
        with pytest.raises(OFFICIAL_ERRORS):
            official(rejected.template, *args)
    else:
        official(rejected.template, *args)  # renders, though the output is wrong


# Parts for random conversations: every value a client could plausibly send, good or bad.
RANDOM_TEXTS: list[Any] = [
    "Hi",
    "",
    "\n\nx\n",
    "<think>\nwhy\n</think>\n\nbecause",
    "a</think>b</think>\n c",
    "東京 🌧",
    "{{ x }}{% if %}",
    None,
    42,
]
RANDOM_CALLS: list[Any] = [
    CALL_STRING_ARGS,
    CALL_DICT_ARGS,
    CALL_BARE,
    {"type": "function", "function": {"name": "f", "arguments": None}},
    {"function": {"name": "f", "arguments": "{}"}},
    {"type": "function", "function": {"arguments": "{}"}},
    {"type": "function", "function": None},
    {"type": None, "function": {"name": "f", "arguments": "[1]"}},
    {"function": {"name": None, "arguments": {}}},
    "get_weather",
]
RANDOM_TOOL_CALLS: list[Any] = ["absent", None, [], "many", "many", {"a": 1}, "xy", 5]
RANDOM_TOOLS: list[list[Tool] | None] = [None, [], [WEATHER_TOOL], [SEARCH_TOOL_BARE, WEATHER_TOOL]]


def random_message(rng: random.Random) -> Message:
    role = rng.choice(["system", "user", "assistant", "assistant", "tool"])
    message: Message = {"role": role, "content": rng.choice(RANDOM_TEXTS)}
    if role == "assistant":
        tool_calls = rng.choice(RANDOM_TOOL_CALLS)
        if tool_calls == "many":
            tool_calls = rng.sample(RANDOM_CALLS, rng.randint(1, 3))
        if tool_calls != "absent":
            message["tool_calls"] = tool_calls
    return message


def text(message: Message) -> bool:
    return isinstance(message.get("content"), str)


def nonsense_in_official(name: str, messages: list[Message], tools: list[Tool] | None) -> bool:
    """Input the official template renders but we refuse (the "nonsense" kind in REJECTED)."""
    if name == QWQ:
        if tools and messages[0]["role"] == "system" and not text(messages[0]):
            return True
        for message in messages:
            if message["role"] == "tool" and not text(message):
                return True
            if message["role"] == "assistant" and message.get("tool_calls"):
                for call in message["tool_calls"]:
                    function = call.get("function", call)
                    if isinstance(function, dict) and not isinstance(function.get("name"), str):
                        return True
        return False
    systems = [m for m in messages if m["role"] == "system"]
    if systems and not text(systems[-1]):
        return True
    return any(
        m["role"] == "assistant" and m["content"] is None and not m.get("tool_calls")
        for m in messages
    )


def test_random_conversations_match_official(official: Render) -> None:
    """Where the official template renders, ours renders the same; where it fails, so do we."""
    rng = random.Random(20250305)
    counts = {"same": 0, "both_fail": 0, "nonsense": 0}
    for _ in range(400):
        messages = [random_message(rng) for _ in range(rng.randint(1, 6))]
        tools = rng.choice(RANDOM_TOOLS)
        prompt = rng.random() < 0.5
        for name in TEMPLATES:
            try:
                expected: str | None = official(name, messages, tools, prompt)
            except OFFICIAL_ERRORS:
                expected = None
            try:
                actual: str | None = ours(name, messages, tools, prompt)
            except ChatTemplateError:
                actual = None
            context = f"{name}: {messages!r} tools={tools!r} prompt={prompt}"
            if expected is None:
                assert actual is None, context
                counts["both_fail"] += 1
            elif actual is None:
                assert nonsense_in_official(name, messages, tools), context
                counts["nonsense"] += 1
            else:
                assert actual == expected, context
                counts["same"] += 1
    # The mix must exercise every outcome, or the generator has drifted.
    assert min(counts.values()) >= 40, counts


# --- the renderer --------------------------------------------------------------------------

USER_HI: list[Message] = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("name", "ending"),
    [(QWQ, "<|im_start|>assistant\n<think>\n"), (R1, R1_PROMPT)],
)
def test_generation_prompt(name: str, ending: str) -> None:
    template = ChatTemplate.builtin(name)
    assert template.render(USER_HI).endswith(ending)
    assert not template.render(USER_HI, add_generation_prompt=False).endswith(ending)


def test_builtin_renders_exact_prompts() -> None:
    qwq = ChatTemplate.builtin(QWQ).render(USER_HI)
    assert qwq == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    r1 = ChatTemplate.builtin(R1).render(USER_HI)
    assert r1 == R1_BOS + R1_USER + "Hi" + R1_PROMPT


def test_builtin_tokens_and_cache() -> None:
    qwq = ChatTemplate.builtin(QWQ)
    assert (qwq.bos_token, qwq.eos_token) == ("", "<|im_end|>")
    r1 = ChatTemplate.builtin(R1)
    assert (r1.bos_token, r1.eos_token) == (R1_BOS, R1_EOS)
    assert ChatTemplate.builtin(QWQ) is qwq


def test_builtin_unknown_name() -> None:
    with pytest.raises(ValueError, match="known: deepseek-r1-distill-qwen-32b, qwq-32b") as caught:
        ChatTemplate.builtin("llama-3")
    assert not isinstance(caught.value, ChatTemplateError)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ messages[0].update({'role': 'system'}) }}",
    ],
)
def test_sandbox_blocks_unsafe_access(source: str) -> None:
    with pytest.raises(ChatTemplateError, match="unsafe"):
        ChatTemplate(source).render(USER_HI)


def test_syntax_error_raised_at_construction() -> None:
    with pytest.raises(ChatTemplateError, match=r"Invalid chat template \(line 2\)"):
        ChatTemplate("ok\n{% if %}")
    with pytest.raises(ChatTemplateError, match="Invalid chat template"):
        ChatTemplate("{% for m in messages %}")


def test_raise_exception_message_is_kept() -> None:
    template = ChatTemplate("{{ raise_exception('Only user messages, please.') }}")
    with pytest.raises(ChatTemplateError) as caught:
        template.render(USER_HI)
    assert str(caught.value) == "Only user messages, please."


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ messages[0].content + 1 }}", "TypeError"),
        ("{{ messages[0].content.missing() }}", "UndefinedError"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ],
)
def test_data_errors_become_chat_template_errors(source: str, expected: str) -> None:
    with pytest.raises(ChatTemplateError, match=expected) as caught:
        ChatTemplate(source).render(USER_HI)
    assert caught.value.__cause__ is not None


def test_error_messages_are_short() -> None:
    template = ChatTemplate("{{ raise_exception(messages[0].content) }}")
    with pytest.raises(ChatTemplateError) as caught:
        template.render([{"role": "user", "content": "word " * 1000}])
    assert len(str(caught.value)) <= 300


def test_empty_conversation() -> None:
    with pytest.raises(ChatTemplateError, match="no messages"):
        ChatTemplate.builtin(R1).render([])


def test_template_variables_match_transformers() -> None:
    source = (
        "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools | tojson }}|"
        "{{ documents is none }}|{{ messages | length }}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    assert template.render(USER_HI) == "<s>|</s>|True|null|True|1"
    tools = [{"name": "f"}]
    assert template.render(USER_HI, tools=tools, add_generation_prompt=False) == (
        '<s>|</s>|False|[{"name": "f"}]|True|1'
    )


def test_tojson_like_transformers() -> None:
    template = ChatTemplate(
        "{{ messages[0] | tojson }}\n{{ messages[0] | tojson(indent=1, sort_keys=True) }}"
    )
    message = {"role": "user", "content": "<b>&'東京'"}
    assert template.render([message]) == (
        '{"role": "user", "content": "<b>&\'東京\'"}\n'
        '{\n "content": "<b>&\'東京\'",\n "role": "user"\n}'
    )


def test_whitespace_control_like_transformers() -> None:
    # trim_blocks drops the newline after a block tag; lstrip_blocks the indent before one.
    template = ChatTemplate(
        "{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n{% endif %}\n{% endfor %}"
    )
    assert template.render(USER_HI) == "[Hi]\n"


def test_loop_controls_and_generation_tag_and_strftime() -> None:
    source = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
        "{{ strftime_now('%Y') | length }}"
    )
    messages: list[Message] = [{"content": "a"}, {"content": "b"}]
    assert ChatTemplate(source).render(messages) == "a4"


def test_content_is_never_evaluated_as_jinja() -> None:
    text = "{{ raise_exception('boom') }}{% if %}"
    for name in TEMPLATES:
        assert text in ChatTemplate.builtin(name).render([{"role": "user", "content": text}])


def test_package_imports_no_server_code() -> None:
    code = (
        "import sys, chat_templates\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'vllm', 'server', 'engine', 'transformers', 'torch')]\n"
        "assert not bad, bad\n"
    )
    root = REPO
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
