"""Requests for the request-log tests, one of each kind of answer: success, stream, each error."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineError
from tests.support.app import AUTH, QWQ, run_url
from tests.support.fake_engine import FakeEngine

RUN = run_url(QWQ)
CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"

Sabotage = Callable[[dict[str, FakeEngine], pytest.MonkeyPatch], None]


def engine_fails(engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    engines[QWQ].failure = EngineError("boom")


def encoding_crashes(engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(text: str) -> list[int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engines[QWQ], "encode", crash)


@dataclass(frozen=True)
class Call:
    """One request, and what goes wrong in the engine for it."""

    path: str = RUN
    json: Any = None
    content: bytes | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))
    sabotage: Sabotage | None = None

    def send(
        self, client: TestClient, engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
    ) -> Any:
        if self.sabotage is not None:
            self.sabotage(engines, monkeypatch)
        # No exception reaches the test: an unexpected one must be answered like a user sees it.
        quiet = TestClient(client.app, raise_server_exceptions=False)
        return quiet.request(
            self.method, self.path, json=self.json, content=self.content, headers=self.headers
        )


# (call, HTTP status, Cloudflare error code, the model the request named)
CALLS = [
    pytest.param(Call(json={"prompt": "Hi", "raw": True}), 200, None, QWQ, id="success"),
    pytest.param(
        Call(json={"prompt": "Hi", "raw": True, "stream": True}), 200, None, QWQ, id="stream"
    ),
    pytest.param(Call(json={"prompt": "Hi"}, headers={}), 401, 10000, None, id="unauthenticated"),
    pytest.param(Call(path="/nowhere", json={}), 404, 7000, None, id="unknown-path"),
    pytest.param(Call(method="GET"), 405, 7001, None, id="wrong-method"),
    pytest.param(Call(content=b"{"), 400, 5006, None, id="body-not-json"),
    pytest.param(Call(json={"prompt": 5}), 400, 5006, QWQ, id="bad-input"),
    pytest.param(
        Call(json={"prompt": "x" * 23900, "raw": True, "max_tokens": 101}),
        413,
        5021,
        QWQ,
        id="context-window",
    ),
    pytest.param(Call(json={"prompt": "Hi"}, sabotage=engine_fails), 500, 3043, QWQ, id="engine"),
    pytest.param(
        Call(json={"prompt": "Hi"}, sabotage=encoding_crashes), 500, 3043, QWQ, id="unexpected"
    ),
]
