"""The Cloudflare API calls `wrangler dev` makes before it can use a remote binding, answered.

wrangler 4.86 (as traced for docs/wrangler-dev.md, "How it works") asks, under
CLOUDFLARE_API_BASE_URL:

    GET  /accounts/{a}/workers/subdomain/edge-preview        a preview session token
    GET  /accounts/{a}/workers/subdomain                     the workers.dev subdomain
    POST /accounts/{a}/workers/scripts/{name}/edge-preview   uploads its proxy Worker, gets a
                                                             preview token (every 50 minutes)
    GET  /memberships                                        only without CLOUDFLARE_ACCOUNT_ID

The subdomain answer is the one that matters: wrangler dials `https://{name}.{subdomain}:443/`,
and with the Worker named "127" and the subdomain "0.0.1/" the URL host setter stops at the
slash, so the "preview edge" is https://127.0.0.1/ (edge.py) and no name needs resolving.

The upload names the bindings the proxy Worker serves; the edge forwards only the AI ones.
Anything else wrangler asks is answered with a Cloudflare error that says what is served.
"""

import json
import re
import secrets
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

API_PREFIX = "/client/v4"
# Any 32 hex digits: wrangler only checks the shape.
ACCOUNT_ID = "0000000000000000000000000000a11c"
WORKER_NAME = "127"
SUBDOMAIN = "0.0.1/"

_EDGE_PREVIEW_INIT = re.compile(r"/accounts/[^/]+/workers/subdomain/edge-preview")
_SUBDOMAIN = re.compile(r"/accounts/[^/]+/workers/subdomain")
_UPLOAD = re.compile(
    r"/accounts/[^/]+/workers/(?:scripts/[^/]+|services/[^/]+/environments/[^/]+)/edge-preview"
)


@dataclass
class PreviewSession:
    """The secrets of one `wrangler-dev` run and what wrangler's uploads said.

    `api_token` is the CLOUDFLARE_API_TOKEN the child gets: the API answers nobody else.
    `preview_token` is what wrangler sends back to the edge on every binding call
    (cf-workers-preview-token): the edge forwards nothing without it, so another local
    process cannot use this run's server token through the edge.
    """

    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    preview_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Binding name -> type, from the last upload; empty until wrangler uploads.
    bindings: dict[str, str] = field(default_factory=dict)

    def binding_type(self, name: str) -> str | None:
        return self.bindings.get(name)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict[str, Any]


def answer_api(
    session: PreviewSession,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> ApiAnswer:
    """The answer to one API call; `path` starts with API_PREFIX, `headers` are lower-case."""
    if headers.get("authorization") != f"Bearer {session.api_token}":
        return _error(401, 10000, "Authentication error: not the token workers-ai-local set")
    route = path.removeprefix(API_PREFIX).rstrip("/")
    if method == "GET" and route == "/memberships":
        return _ok([{"id": "local", "account": {"id": ACCOUNT_ID, "name": "workers-ai-local"}}])
    if method == "GET" and _EDGE_PREVIEW_INIT.fullmatch(route):
        return _ok({"token": secrets.token_urlsafe(16), "exchange_url": None})
    if method == "GET" and _SUBDOMAIN.fullmatch(route):
        return _ok({"subdomain": SUBDOMAIN})
    if method == "POST" and _UPLOAD.fullmatch(route):
        session.bindings = uploaded_bindings(headers.get("content-type", ""), body)
        return _ok({"preview_token": session.preview_token, "tail_url": None})
    return _error(
        404,
        7003,
        f"workers-ai-local wrangler-dev serves only what `wrangler dev` asks for the AI "
        f"binding; {method} {route} needs Cloudflare",
    )


def uploaded_bindings(content_type: str, body: bytes) -> dict[str, str]:
    """Binding name -> type, from the `metadata` part of a Worker upload (multipart)."""
    message = BytesParser(_class=EmailMessage, policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return {}
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "metadata":
            continue
        payload = part.get_payload(decode=True)
        try:
            metadata = json.loads(payload) if isinstance(payload, bytes) else None
        except ValueError:
            return {}
        bindings = metadata.get("bindings") if isinstance(metadata, dict) else None
        if not isinstance(bindings, list):
            return {}
        return {
            str(binding["name"]): str(binding.get("type"))
            for binding in bindings
            if isinstance(binding, dict) and "name" in binding
        }
    return {}


def _ok(result: Any) -> ApiAnswer:
    return ApiAnswer(200, {"success": True, "errors": [], "messages": [], "result": result})


def _error(status: int, code: int, message: str) -> ApiAnswer:
    return ApiAnswer(
        status,
        {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        },
    )
