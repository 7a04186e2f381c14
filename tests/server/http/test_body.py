"""Request bodies: a size limit checked before parsing, and work that stays off the event loop."""

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.generation.service import INLINE_BODY_CHARS
from tests.support.app import AUTH, QWQ, ClientFactory, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

LIMIT = 2048


@pytest.fixture
def small_client(make_client: ClientFactory) -> TestClient:
    return make_client(max_request_bytes=LIMIT)


def test_a_body_at_the_limit_is_read(small_client: TestClient) -> None:
    prompt = "a" * (LIMIT - len('{"prompt":""}'))
    content = f'{{"prompt":"{prompt}"}}'.encode()
    assert len(content) == LIMIT

    response = small_client.post(run_url(QWQ), content=content, headers=AUTH)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "url",
    [
        run_url(QWQ),
        "/client/v4/accounts/acct/ai/run",
        "/client/v4/accounts/acct/ai/v1/chat/completions",
        "/client/v4/accounts/acct/ai/finetunes",
    ],
    ids=["run", "universal", "openai-chat", "finetunes"],
)
def test_a_declared_length_over_the_limit_is_413_before_parsing(
    small_client: TestClient, url: str
) -> None:
    # Not even JSON: the length alone refuses it.
    response = small_client.post(url, content=b"x" * (LIMIT + 1), headers=AUTH)

    assert_error(response, 413, 3006, f"at most {LIMIT} bytes")


def test_a_streamed_body_over_the_limit_is_413(small_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"prompt": "'
        for _ in range(LIMIT // 100 + 1):
            yield b"a" * 100
        yield b'"}'

    response = small_client.post(run_url(QWQ), content=chunks(), headers=AUTH)

    assert_error(response, 413, 3006, f"at most {LIMIT} bytes")


def test_authentication_comes_before_the_size_limit(small_client: TestClient) -> None:
    # An unauthenticated client learns nothing about the body: 401 first.
    response = small_client.post(run_url(QWQ), content=b"x" * (LIMIT + 1))

    assert_error(response, 401, 10000)


def test_templating_and_tokenizing_more_than_a_little_text_run_off_the_event_loop(
    client: TestClient, engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    encode = engines[QWQ].encode

    def recording_encode(text: str) -> list[int]:
        threads.append(threading.current_thread().name)
        return encode(text)

    monkeypatch.setattr(engines[QWQ], "encode", recording_encode)

    prompt = "x" * (INLINE_BODY_CHARS + 1)  # a short one is prepared on the loop (test_lanes)
    response = client.post(run_url(QWQ), json={"prompt": prompt}, headers=AUTH)

    assert response.status_code == 200, response.text
    assert len(threads) == 1
    assert threads[0].startswith("prepare")
