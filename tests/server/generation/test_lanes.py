"""Where a request is prepared: a short body (at most INLINE_BODY_CHARS of text, no LoRA) on
the event loop, quicker than any thread hop; bodies holding more than LONG_BODY_CHARS of text on
a lane of their own, at a lower CPU priority (Linux), so that other requests never queue behind
a long tokenizing, and live streams keep their cores; the others on the preparing lane."""

import os
import sys
import threading
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from server.generation.service import INLINE_BODY_CHARS, LONG_BODY_CHARS, is_long, is_short
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.fake_engine import FakeEngine


@dataclass
class ThreadNotingEngine(FakeEngine):
    """Notes the thread (name, nice value) each prompt is tokenized on."""

    threads: list[tuple[str, int]] = field(default_factory=list)

    def encode(self, text: str) -> list[int]:
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.threads.append((threading.current_thread().name, nice))
        return super().encode(text)

    def fewest_tokens(self, text: str) -> int:
        return 0  # no floor: every prompt is tokenized


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {QWQ: ThreadNotingEngine(), R1: FakeEngine()}


def test_a_body_is_long_by_the_text_of_all_its_strings() -> None:
    half = "x" * (LONG_BODY_CHARS // 2)

    assert not is_long({"prompt": half})
    assert not is_long({"messages": [{"role": "user", "content": half}], "max_tokens": 10})
    assert is_long({"messages": [{"content": half}, {"content": half + "x"}]})
    assert is_long(["x" * (LONG_BODY_CHARS + 1)])
    assert not is_long(None)


def test_a_short_body_without_an_adapter_is_prepared_on_the_event_loop() -> None:
    short = "x" * (INLINE_BODY_CHARS - len("user"))

    assert is_short({"messages": [{"role": "user", "content": short}]})
    assert is_short({"prompt": "Hi", "lora": None})
    assert not is_short({"prompt": "x" * (INLINE_BODY_CHARS + 1)})
    assert not is_short({"prompt": "Hi", "lora": "my-finetune"})  # reads the adapter's files
    assert not is_short([{"prompt": "Hi"}])


def test_each_body_is_prepared_where_its_size_says(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engine = engines[QWQ]
    assert isinstance(engine, ThreadNotingEngine)
    loop_thread = client.portal.call(lambda: threading.current_thread().name)  # type: ignore[union-attr]

    prompts = ("Hi", "x" * (INLINE_BODY_CHARS + 1), "x" * (LONG_BODY_CHARS + 1), "Hello")
    for prompt in prompts:
        response = client.post(run_url(QWQ), json={"prompt": prompt}, headers=AUTH)
        # The long one is over the window: tokenized, then refused.
        assert response.status_code in (200, 413), response.text

    threads = [name for name, _ in engine.threads]
    assert threads[0] == loop_thread
    assert threads[1].startswith("prepare_")
    assert threads[2].startswith("prepare-long_")
    assert threads[3] == loop_thread
    (_, medium_nice), (_, long_nice) = engine.threads[1:3]
    if sys.platform == "linux" and medium_nice < 19:
        assert long_nice > medium_nice
