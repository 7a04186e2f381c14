"""Two preparing lanes: bodies holding more than LONG_BODY_CHARS of text are templated and
tokenized on a lane of their own, at a lower CPU priority (Linux), so that short requests never
queue behind a long tokenizing, and live streams keep their cores."""

import os
import sys
import threading
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from server.generation.service import LONG_BODY_CHARS, is_long
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


def test_long_bodies_are_prepared_on_their_own_lane_at_a_lower_priority(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engine = engines[QWQ]
    assert isinstance(engine, ThreadNotingEngine)

    for prompt in ("Hi", "x" * (LONG_BODY_CHARS + 1), "Hello"):
        response = client.post(run_url(QWQ), json={"prompt": prompt}, headers=AUTH)
        # The long one is over the window: tokenized, then refused.
        assert response.status_code in (200, 413), response.text

    (short, short_nice), (long, long_nice), (short_again, _) = engine.threads
    assert short.startswith("prepare_")
    assert long.startswith("prepare-long_")
    assert short_again == short
    if sys.platform == "linux" and short_nice < 19:
        assert long_nice > short_nice
