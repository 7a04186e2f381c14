"""Parse a Workers AI event stream strictly, the way the strictest client would."""

import json
import re
from typing import Any

EVENT = re.compile(r"data: (\S.*)\n\n")


def parse_events(body: str) -> tuple[list[dict[str, Any]], bool]:
    """Return the JSON events and whether the stream ended with `data: [DONE]`.

    Raises AssertionError if anything but `data: <json>\\n\\n` events appears.
    """
    events: list[dict[str, Any]] = []
    position = 0
    done = False
    while position < len(body):
        match = EVENT.match(body, position)
        assert match, f"unexpected bytes at {position}: {body[position : position + 80]!r}"
        assert not done, "event after [DONE]"
        payload = match.group(1)
        if payload == "[DONE]":
            done = True
        else:
            assert payload == json.dumps(
                json.loads(payload), separators=(",", ":"), ensure_ascii=False
            ), f"not compact JSON: {payload!r}"
            events.append(json.loads(payload))
        position = match.end()
    return events, done
