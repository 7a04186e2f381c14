"""Assertions on Cloudflare's response envelope."""

from typing import Any


def assert_error(response: Any, status: int, code: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False
    assert payload["result"] is None
    assert payload["messages"] == []
    assert len(payload["errors"]) == 1
    assert payload["errors"][0]["code"] == code
    for fragment in fragments:
        assert fragment in payload["errors"][0]["message"]
    assert "Traceback" not in response.text
