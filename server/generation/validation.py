"""Turn a request body into a model's wire schema, or refuse it as Workers AI does."""

from typing import Any

from pydantic import ValidationError

from server.errors import BadInput
from server.generation.schemas import MessagesInput, PromptInput
from server.generation.specs import ModelSpec
from server.validation_errors import bad_input, json_type


def parse_input(spec: ModelSpec, body: Any) -> PromptInput | MessagesInput:
    """Validate `body` against the model's schema: the `prompt` form or the `messages` form.

    Raises BadInput naming the offending field.
    """
    if not isinstance(body, dict):
        raise BadInput(f"Type mismatch of '/', '{json_type(body)}' not in 'object'")
    has_prompt, has_messages = "prompt" in body, "messages" in body
    if has_prompt and has_messages:
        raise BadInput("oneOf at '/' not met, 2 matches: send either 'prompt' or 'messages'")
    if not (has_prompt or has_messages):
        raise BadInput(
            "oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
            "required properties at '/' are 'messages'"
        )
    schema = spec.prompt_schema if has_prompt else spec.messages_schema
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        raise bad_input(error.errors(include_url=False)) from None
