"""The Cloudflare API calls `wrangler dev` makes (wrangler 4.86), answered."""

from typing import Any

import pytest

from server.wrangler_dev.cloudflare_api import (
    ACCOUNT_ID,
    API_PREFIX,
    SUBDOMAIN,
    PreviewSession,
    answer_api,
    uploaded_bindings,
)

ACCOUNT = "0123456789abcdef0123456789abcdef"
BOUNDARY = "----formdata-undici-0123456789"
# The shape of wrangler's upload of its proxy Worker (shared/reference/wrangler-dev.md §2).
UPLOAD = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="metadata"\r\n\r\n'
    '{"main_module":"ProxyServerWorker.js","bindings":[{"name":"AI","type":"ai","raw":true},'
    '{"name":"KV","type":"kv_namespace","namespace_id":"x","raw":true}],'
    '"compatibility_date":"2025-04-28"}\r\n'
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="ProxyServerWorker.js"; '
    'filename="ProxyServerWorker.js"\r\n'
    "Content-Type: application/javascript+module\r\n\r\n"
    "export default {};\r\n"
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="wrangler-session-config"\r\n\r\n'
    '{"workers_dev":true,"minimal_mode":true}\r\n'
    f"--{BOUNDARY}--\r\n"
).encode()
UPLOAD_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def call(session: PreviewSession, method: str, route: str, body: bytes = b"") -> Any:
    """The `result` of a successful call."""
    headers = {"authorization": f"Bearer {session.api_token}", "content-type": UPLOAD_TYPE}
    answer = answer_api(session, method, API_PREFIX + route, headers, body)
    assert answer.status == 200, answer.body
    assert answer.body["success"] is True
    return answer.body["result"]


def test_the_subdomain_makes_the_preview_host_127_0_0_1() -> None:
    result = call(PreviewSession(), "GET", f"/accounts/{ACCOUNT}/workers/subdomain")

    assert result == {"subdomain": SUBDOMAIN}
    # wrangler's host `${name}.${subdomain}` with the name "127", cut at the slash by the URL
    # host setter in workerd.
    assert f"127.{SUBDOMAIN}".split("/")[0] == "127.0.0.1"


def test_the_preview_session_has_no_exchange_url() -> None:
    result = call(PreviewSession(), "GET", f"/accounts/{ACCOUNT}/workers/subdomain/edge-preview")

    assert result["exchange_url"] is None
    assert result["token"]


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(f"/accounts/{ACCOUNT}/workers/scripts/127/edge-preview", id="script"),
        pytest.param(
            f"/accounts/{ACCOUNT}/workers/services/127/environments/dev/edge-preview",
            id="service-environment",
        ),
    ],
)
def test_the_upload_returns_the_runs_preview_token_and_records_the_bindings(route: str) -> None:
    session = PreviewSession()

    result = call(session, "POST", route, UPLOAD)

    assert result == {"preview_token": session.preview_token, "tail_url": None}
    assert session.bindings == {"AI": "ai", "KV": "kv_namespace"}


def test_memberships_name_the_one_account() -> None:
    result = call(PreviewSession(), "GET", "/memberships")

    assert [membership["account"]["id"] for membership in result] == [ACCOUNT_ID]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer someone-elses", "Basic eA=="],
    ids=["none", "other-token", "other-scheme"],
)
def test_only_the_runs_token_is_answered(authorization: str | None) -> None:
    session = PreviewSession()
    headers = {} if authorization is None else {"authorization": authorization}

    answer = answer_api(session, "GET", f"{API_PREFIX}/memberships", headers, b"")

    assert answer.status == 401
    assert answer.body["errors"] == [
        {"code": 10000, "message": "Authentication error: not the token workers-ai-local set"}
    ]


def test_any_other_call_is_a_cloudflare_error_that_says_what_is_served() -> None:
    session = PreviewSession()
    headers = {"authorization": f"Bearer {session.api_token}"}

    answer = answer_api(
        session, "GET", f"{API_PREFIX}/accounts/{ACCOUNT}/d1/database", headers, b""
    )

    assert answer.status == 404
    assert answer.body["success"] is False
    assert "needs Cloudflare" in str(answer.body["errors"])


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", b"{}", id="not-multipart"),
        pytest.param(UPLOAD_TYPE, UPLOAD.replace(b'"bindings"', b'"other"'), id="no-bindings"),
        pytest.param(UPLOAD_TYPE, UPLOAD.replace(b'{"main_module"', b'{"main'), id="bad-json"),
    ],
)
def test_an_upload_without_readable_bindings_records_none(content_type: str, body: bytes) -> None:
    assert uploaded_bindings(content_type, body) == {}
