"""Render a conversation through a Jinja chat template, the way transformers does.

The environment mirrors transformers' `_compile_jinja_template` (transformers 5.x): an
`ImmutableSandboxedEnvironment` with `trim_blocks`, `lstrip_blocks`, the `loopcontrols`
extension, a `{% generation %}` tag, a non-escaping `tojson` filter and the `raise_exception`
and `strftime_now` globals. Variables match `render_jinja_template`: `messages`, `tools`,
`documents` (always None here), `add_generation_prompt`, `bos_token` and `eos_token`. So a
checkpoint's own template renders here exactly as `tokenizer.apply_chat_template` renders it.
One deliberate difference: unsafe attribute access (`''.__class__`) raises instead of
printing "".

The built-in templates are this package's .jinja files, for the models whose special tokens
are named here (QWQ_EOS, R1_BOS, R1_EOS): `ChatTemplate.builtin(name)` compiles one with its
tokens, `builtin_source(name)` reads its text (the tiny checkpoints embed it).
"""

import functools
import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Long enough to name the problem, short enough for an HTTP error body.
_MAX_MESSAGE_CHARS = 300

# The special tokens of the models the built-in templates are for, from each model's
# tokenizer_config.json. QwQ has no bos token. DeepSeek's tokens really are spelt with
# U+FF5C FULLWIDTH VERTICAL LINE and U+2581.
QWQ_EOS = "<|im_end|>"
R1_BOS = "<｜begin▁of▁sentence｜>"
R1_EOS = "<｜end▁of▁sentence｜>"

# name -> (bos_token, eos_token); "" for a token the model does not have.
_BUILTIN_TOKENS: dict[str, tuple[str, str]] = {
    "qwq-32b": ("", QWQ_EOS),
    "deepseek-r1-distill-qwen-32b": (R1_BOS, R1_EOS),
}


class ChatTemplateError(ValueError):
    """The conversation cannot be rendered with this template. str(err) is a user-facing message."""


class ChatTemplateMissingError(FileNotFoundError):
    """A built-in template's file is missing from the `chat_templates` package."""


class _TemplateRaised(jinja2.TemplateError):
    """Raised by the template itself through raise_exception(); its message is meant for users."""


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body unchanged.

    transformers uses the tag to mark assistant tokens for training masks; outside that mode it
    is a no-op. Supporting it keeps checkpoint templates that use it compilable here.
    """

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares this as a plain class attribute

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        # Same node as transformers builds, so scoping inside the block behaves the same.
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Callable[[], str]) -> str:
        return caller()


class _Sandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox, except that unsafe attribute access fails at once.

    jinja2 hands back a silent Undefined for e.g. `''.__class__`, which prints as "". Failing
    loudly tells the template's author; a working template never touches such attributes.
    """

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Same signature and defaults as transformers' filter. Jinja's built-in tojson would
    # HTML-escape '<', '>', '&' and "'", which changes the prompt.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _make_environment() -> _Sandbox:
    env = _Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


# One environment for every template: it holds configuration only, and compiled templates
# are safe to render from several threads at once.
_ENVIRONMENT = _make_environment()


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - 3] + "..."


class ChatTemplate:
    """A compiled chat template plus the special tokens it may reference.

    The source is compiled once, here; render() can then be called any number of times,
    concurrently. A source that is not valid Jinja raises ChatTemplateError.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        try:
            self._template = _ENVIRONMENT.from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise ChatTemplateError(
                _shorten(f"Invalid chat template (line {error.lineno}): {error.message}")
            ) from error
        self._source = source
        self._bos_token = bos_token
        self._eos_token = eos_token

    # Read-only: built-in instances are cached and shared.
    @property
    def source(self) -> str:
        return self._source

    @property
    def bos_token(self) -> str:
        return self._bos_token

    @property
    def eos_token(self) -> str:
        return self._eos_token

    @classmethod
    def builtin(cls, name: str) -> "ChatTemplate":
        """name is "qwq-32b" or "deepseek-r1-distill-qwen-32b" (our .jinja files, cached).

        Each comes with its model's special tokens: R1's bos and eos are DeepSeek's
        begin/end-of-sentence tokens; QwQ has no bos and eos "<|im_end|>".
        Unknown name -> ValueError.
        """
        _check_builtin(name)
        return _load_builtin(name)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for `messages` (plain dicts with string content) and optional `tools`.

        Raises ChatTemplateError, with a message fit to show the client, for an empty
        conversation or whenever the template fails: its own raise_exception(), a sandbox
        violation, or data the template cannot handle (e.g. None where it concatenates strings).
        """
        if not messages:
            # transformers refuses an empty conversation before rendering, too.
            raise ChatTemplateError("The conversation has no messages.")
        try:
            return self._template.render(
                messages=list(messages),
                tools=None if tools is None else list(tools),
                documents=None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except _TemplateRaised as error:
            raise ChatTemplateError(_shorten(error.message or "Invalid conversation.")) from error
        except SecurityError as error:
            raise ChatTemplateError(
                _shorten(f"The chat template attempted an unsafe operation: {error}")
            ) from error
        except Exception as error:
            # A template is a program supplied as data, so any failure inside it (UndefinedError,
            # TypeError from None content, ZeroDivisionError, ...) is a rendering failure of this
            # conversation, not a server bug. The cause stays chained for the logs.
            raise ChatTemplateError(
                _shorten(
                    "The chat template could not render this conversation "
                    f"({type(error).__name__}: {error})"
                )
            ) from error


def builtin_source(name: str) -> str:
    """The text of the built-in template `name` (as `ChatTemplate.builtin` takes it), read anew
    from the package on every call.

    Unknown name -> ValueError; a known one whose file is missing -> ChatTemplateMissingError.
    """
    _check_builtin(name)
    file_name = f"{name}.jinja"
    for directory in _package_dirs():
        resource = directory.joinpath(file_name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    raise ChatTemplateMissingError(
        f"chat template {file_name!r} is missing from the 'chat_templates' package"
    )


def _check_builtin(name: str) -> None:
    if name not in _BUILTIN_TOKENS:
        known = ", ".join(sorted(_BUILTIN_TOKENS))
        raise ValueError(f"No built-in chat template {name!r}; known: {known}")


def _package_dirs() -> list[Traversable]:
    try:
        return [resources.files("chat_templates")]
    except NotADirectoryError:
        # Python 3.11's resources reader fails on a namespace package installed in editable
        # mode (setuptools puts a non-directory placeholder on its __path__): use the package's
        # real directories instead.
        package = importlib.import_module("chat_templates")
        return [Path(entry) for entry in package.__path__ if Path(entry).is_dir()]


@functools.cache
def _load_builtin(name: str) -> ChatTemplate:
    bos_token, eos_token = _BUILTIN_TOKENS[name]
    return ChatTemplate(builtin_source(name), bos_token=bos_token, eos_token=eos_token)
