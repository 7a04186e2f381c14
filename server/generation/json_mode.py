"""JSON mode: QwQ's `guided_json`, R1-distill's `response_format`.

The grammar applies from the first generated token, as on Workers AI. With the extension
`json_after_reasoning` (or the model's config) the model reasons first and the grammar applies
after `</think>`. `response` is then the parsed JSON value; output that ends before the JSON is
complete is an error, never a truncated string dressed as success.
"""

import json
from typing import Any

from engine.types import FinishReason, StructuredOutput
from server.errors import BadInput, JsonModeNotMet
from server.generation.schemas import MessagesInput, PromptInput, ResponseFormat


class RawJson:
    """A JSON text the model wrote, checked to parse, to be sent as it is (never re-encoded:
    see `server.http.exact_json`). A plain class on purpose: pydantic passes unknown types
    through `model_dump` untouched, where it would turn a dataclass into a dict."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text!r})"


def structured_output(
    request: PromptInput | MessagesInput, *, default_after_reasoning: bool
) -> StructuredOutput | None:
    """The grammar a request asks for, or None."""
    after = (
        default_after_reasoning
        if request.json_after_reasoning is None
        else request.json_after_reasoning
    )
    if request.guided_json is not None:
        return StructuredOutput(json_schema=request.guided_json, after_reasoning=after)
    if request.response_format is not None:
        return _from_response_format(request.response_format, after)
    return None


def _from_response_format(response_format: ResponseFormat, after: bool) -> StructuredOutput:
    if response_format.type == "json_object":
        return StructuredOutput(json_object=True, after_reasoning=after)
    schema = response_format.json_schema
    wrapped = isinstance(schema, dict) and isinstance(schema.get("schema"), dict)
    if wrapped and ({"name", "strict"} & schema.keys() or set(schema) == {"schema"}):
        schema = schema["schema"]  # OpenAI's wrapper {"name", "schema", "strict"}
    if not isinstance(schema, dict):
        raise BadInput("'/response_format/json_schema' must be a JSON Schema object")
    return StructuredOutput(json_schema=schema, after_reasoning=after)


def parse_json_output(text: str, finish_reason: FinishReason | None, max_tokens: int) -> Any:
    """The JSON value of the output; raises JsonModeNotMet when it is not complete JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if finish_reason == "length":
            raise JsonModeNotMet(
                f"the output reached max_tokens ({max_tokens}) before the JSON was complete; "
                "raise max_tokens"
            ) from None
        raise JsonModeNotMet("the model's output is not valid JSON") from None
