"""Reading a request: its JSON body and the headers that shape how it runs."""

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from server.errors import BadInput, ClientDisconnected, MissingBody, RequestTooLarge
from server.http.state import get_settings

# AI Gateway's per-request timeout header, in milliseconds; it can only shorten the server's.
TIMEOUT_HEADER = "cf-aig-request-timeout"
SESSION_HEADER = "x-session-affinity"
MAX_SESSION_ID = 256


async def read_json(request: Request) -> Any:
    """The parsed JSON body; raises MissingBody, BadInput, RequestTooLarge (past the settings'
    `max_request_bytes`, before anything is parsed), or ClientDisconnected."""
    raw = await _read_body(request, get_settings(request).max_request_bytes)
    if not raw.strip():
        raise MissingBody()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInput(f"the request body is not valid JSON ({error})") from None


async def _read_body(request: Request, max_bytes: int) -> bytes:
    too_large = RequestTooLarge(f"the body may have at most {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large  # refused before a byte of it is read
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise too_large
    except ClientDisconnect:
        raise ClientDisconnected() from None
    return bytes(body)


def requested_timeout(request: Request) -> float | None:
    """The `cf-aig-request-timeout` header in seconds, or None; raises BadInput."""
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        raise BadInput(f"header '{TIMEOUT_HEADER}' must be a number of milliseconds") from None
    if not milliseconds > 0:  # NaN too
        raise BadInput(f"header '{TIMEOUT_HEADER}' must be positive")
    return milliseconds / 1000


def session_affinity(request: Request) -> str | None:
    """Workers AI's `x-session-affinity` header (prompt caching): passed on to a remote engine
    so that a router can send a session's requests to one replica. Raises BadInput when it is
    longer than 256 characters or not printable ASCII."""
    value = request.headers.get(SESSION_HEADER)
    if value is None or value == "":
        return None
    if len(value) > MAX_SESSION_ID or not value.isascii() or not value.isprintable():
        raise BadInput(
            f"header '{SESSION_HEADER}' must be at most {MAX_SESSION_ID} printable ASCII characters"
        )
    return value
