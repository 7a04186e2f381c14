"""JSON responses that carry a model's JSON output exactly as the model wrote it.

JSON mode's `response` is the model's own JSON text (`RawJson`), already checked to parse.
Decoding it into Python and encoding it again would change it: `1e999` becomes `inf`, which no
JSON encoder may write, and `0.10000000000000000001` loses digits. So the envelope is encoded
with a placeholder in its place, and the text goes in as it is.
"""

import json
import secrets
from typing import Any

from fastapi.responses import JSONResponse

from server.generation.json_mode import RawJson


def encode_json(content: Any) -> bytes:
    """Compact JSON of `content`, with every RawJson inside it written as its own text."""
    raw: list[str] = []
    nonce = secrets.token_hex(8)

    def placeholder(value: Any) -> str:
        if not isinstance(value, RawJson):
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        raw.append(value.text)
        return f"{nonce}:{len(raw) - 1}"

    text = json.dumps(
        content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=placeholder
    )
    for index, value in enumerate(raw):
        text = text.replace(json.dumps(f"{nonce}:{index}"), value, 1)
    return text.encode()


class ExactJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return encode_json(content)
