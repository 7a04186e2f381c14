"""The Workers AI binding's wire protocol, as Miniflare's remote-proxy client speaks it. No HTTP.

A Worker's `env.AI.run(model, inputs, options)` is workerd's built-in `Ai` class, which fetches
`https://workers-binding.ai/run?version=3` from its inner fetcher. Under Miniflare (4.20260426;
wrangler 4.86 and vitest-pool-workers 0.15 embed it) that fetcher is the remote-proxy client,
which sends the inner request to the connection string, as it is:

    POST <connection string>                           GET for `env.AI.models()`
    MF-Binding: AI                                     the binding's name
    MF-URL: https://workers-binding.ai/run?version=3   `/ai-gateway/run` when options.gateway is
                                                       set, `/ai-api/models/search?...` for models()
    MF-Header-cf-consn-model-id: @cf/qwen/qwq-32b      every inner header, prefixed `MF-Header-`
    {"inputs": {...}, "options": {...}}                options: the run's options, less `prefix`,
                                                       `extraHeaders` and `signal`

and opens one WebSocket per binding instance, `<connection string>?MF-Binding=AI` (a capnweb
JSRPC session that `run()` and `models()` never use).

What the binding needs back (read in workerd's `cloudflare-internal:ai-api`):
    run, whole    200, `content-type: application/json` EXACTLY, the bare `result`; with any
                  other content type the Worker gets a ReadableStream instead of an object
    run, stream   200, `text/event-stream`: Workers AI's SSE, handed to the Worker as it is
    run, error    non-2xx, {"internalCode", "name", "description"}: the Worker catches an error
                  named `name` whose message is "<internalCode>: <description>"
    models()      200, Cloudflare's envelope (the binding returns its `result`); on an error, the
                  envelope, whose errors[0].message the binding throws
    every answer  `cf-ai-req-id`, which becomes `env.AI.lastRequestId`

Authentication: the binding sends no Authorization header. With tokens configured, the connection
string carries one in its path: `connection_string(server, token)` = `<server>/binding/<token>/`.
A proxy in front (`workers-ai-local wrangler-dev`) may instead forward the binding's request
unchanged to the server's root with `Authorization: Bearer <token>` added.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from server.errors import BadInput, NoRoute, WorkersAIError

BINDING_HEADER = "mf-binding"  # header, or query parameter `MF-Binding` on the WebSocket
BINDING_QUERY = "MF-Binding"
URL_HEADER = "mf-url"
INNER_PREFIX = "mf-header-"
MODEL_HEADER = "cf-consn-model-id"
REQUEST_ID_HEADER = "cf-ai-req-id"
SESSION_HEADER = "x-session-affinity"  # reaches the server through `extraHeaders`

# The path of the connection string when tokens are configured: /binding/<token>/
TOKEN_PATH = "/binding/"

RUN_PATHS = ("/run", "/ai-gateway/run")
MODELS_PATH = "/ai-api/models/search"

# workerd names the errors it builds from `{"internalCode", "name", "description"}` after `name`.
ERROR_NAME = "AiError"
# Workers AI's REST messages read "AiError: <description>" (server.errors); the binding shows
# the name itself, so it is left out of the description.
REST_NAME_PREFIX = ERROR_NAME + ": "


@dataclass(frozen=True, slots=True)
class RunCall:
    """`env.AI.run(model, ...)`. `stream_input`: the inputs held a ReadableStream, which the
    binding sends as the raw body (with the other inputs in the URL's `userInputs`)."""

    model: str
    session_id: str | None = None
    stream_input: bool = False


@dataclass(frozen=True, slots=True)
class ModelsCall:
    """`env.AI.models(params)`: the catalog search, with `params` as query parameters."""

    params: dict[str, str] = field(default_factory=dict)


BindingCall = RunCall | ModelsCall


def is_binding_request(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """Whether a request is the binding's: a call (header `MF-Binding`) or its WebSocket
    (query parameter `MF-Binding`). Header names in any case."""
    return BINDING_QUERY in query or BINDING_HEADER in {name.lower() for name in headers}


def parse_call(method: str, headers: Mapping[str, str]) -> BindingCall:
    """The call a binding request makes, from its method and headers (lower-case names).

    Raises NoRoute (404, 7000) for a request that is no binding call (no `MF-Binding`), and
    for what the binding can send but this server does not serve: AI Gateway's and AutoRAG's
    methods, `toMarkdown()`, a method other than the call's.
    """
    if BINDING_HEADER not in headers:
        raise NoRoute()
    url = urlsplit(headers.get(URL_HEADER, ""))
    if url.path in RUN_PATHS and method == "POST":
        query = dict(parse_qsl(url.query))
        return RunCall(
            model=headers.get(INNER_PREFIX + MODEL_HEADER, ""),
            session_id=headers.get(INNER_PREFIX + SESSION_HEADER) or None,
            stream_input="userInputs" in query,
        )
    if url.path == MODELS_PATH and method == "GET":
        return ModelsCall(dict(parse_qsl(url.query)))
    raise NoRoute(
        f"workers-ai-local serves env.AI.run() and env.AI.models(); {method} {url.path or '/'} "
        "of the binding is Cloudflare-only"
    )


def run_arguments(call: RunCall, body: Any) -> tuple[Any, float | None]:
    """The model's inputs and the run's timeout in seconds (None: the server's), from the body
    `{"inputs": ..., "options": ...}`. Raises BadInput.

    Of the options only `gateway.requestTimeoutMs` means something here: AI Gateway's
    per-request timeout, as the REST routes' `cf-aig-request-timeout` header (which the binding
    sends for it on Cloudflare). Other options are the binding's own, or AI Gateway's, and
    ignored as the REST routes ignore the other `cf-aig-*` headers.
    """
    if not call.model:
        raise BadInput(f"the binding sent no model (header MF-Header-{MODEL_HEADER})")
    if call.stream_input:
        raise BadInput(f"{call.model} takes JSON inputs; a ReadableStream input is not served")
    if not isinstance(body, dict) or "inputs" not in body:
        raise BadInput("required properties at '/' are 'inputs'")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadInput("'/options' must be an object")
    return body["inputs"], _gateway_timeout(options.get("gateway"))


def _gateway_timeout(gateway: Any) -> float | None:
    if not isinstance(gateway, dict) or gateway.get("requestTimeoutMs") is None:
        return None
    milliseconds = gateway["requestTimeoutMs"]
    valid = isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool)
    if not valid or not math.isfinite(milliseconds) or milliseconds <= 0:
        raise BadInput("'/options/gateway/requestTimeoutMs' must be a positive number")
    return float(milliseconds) / 1000


def error_body(error: WorkersAIError) -> dict[str, Any]:
    """A failed run as the binding reads it: the Worker catches `AiError: <code>: <message>`."""
    return {
        "internalCode": error.code,
        "name": ERROR_NAME,
        "description": error.message.removeprefix(REST_NAME_PREFIX),
    }


def connection_string(server_url: str, token: str | None) -> str:
    """Miniflare's `remoteProxyConnectionString` for a server at `server_url`
    (`http://127.0.0.1:8787`): its root without tokens, else its `/binding/<token>/`."""
    root = server_url.rstrip("/")
    if token is None:
        return root + "/"
    return f"{root}{TOKEN_PATH}{quote(token, safe='')}/"


def token_of(path_token: str) -> str:
    """The token of a `/binding/<token>/` path, given what follows `/binding/` (its slash
    included: a token may hold `/`, sent as `%2F`)."""
    return path_token.removesuffix("/")
