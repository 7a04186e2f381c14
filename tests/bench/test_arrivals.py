"""What the benchmarks send: arrival times (a closed loop, or Poisson arrivals as `vllm bench
serve` sends), output lengths (all equal, or spread as its `--random-range-ratio` does), and the
chat requests of `bench.remote --direct chat`."""

import itertools
import statistics

import pytest

from bench.compare import Ours, arrivals, output_lengths
from bench.remote import DirectChat


def test_a_closed_loop_sends_every_request_at_once_behind_the_gate() -> None:
    assert arrivals(5, None) == [0.0] * 5


def test_poisson_arrivals_keep_the_rate_and_are_the_same_for_every_path() -> None:
    times = arrivals(4000, rate=2.0)

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert times[0] == 0.0
    assert all(gap > 0 for gap in gaps)
    assert 0.45 < statistics.mean(gaps) < 0.55  # 1/rate
    assert 0.45 < statistics.stdev(gaps) < 0.55  # exponential: as wide as its mean
    assert arrivals(4000, rate=2.0) == times
    assert arrivals(4000, rate=2.0, seed=1) != times


def test_without_a_range_every_request_asks_for_max_tokens() -> None:
    assert output_lengths(5, 128, 0.0) == [128] * 5


def test_a_range_spreads_lengths_evenly_around_max_tokens_the_same_for_every_path() -> None:
    lengths = output_lengths(4000, 128, 0.5)

    assert min(lengths) == 64
    assert max(lengths) == 192
    assert 124 < statistics.mean(lengths) < 132
    assert 34 < statistics.stdev(lengths) < 40  # even over 64..192: 128 / sqrt(12) = 37
    assert output_lengths(4000, 128, 0.5) == lengths
    assert output_lengths(4000, 128, 0.5, seed=1) != lengths


def test_a_range_never_asks_for_no_tokens() -> None:
    assert min(output_lengths(1000, 2, 0.9)) == 1


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_a_range_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="range_ratio"):
        output_lengths(3, 128, ratio)


def test_the_chat_direct_path_sends_our_conversation_and_reads_its_tokens_back() -> None:
    direct = DirectChat("direct", "http://router")
    _, ours = Ours("ours", "http://ours").request("Hello", 64)

    path, body = direct.request("Hello", 64)

    assert path == "/v1/chat/completions"
    assert body["messages"] == ours["messages"]
    assert (body["max_tokens"], body["temperature"], body["stream"]) == (64, 0, True)
    assert body["ignore_eos"] is True
    role: dict[str, object] = {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
    }
    assert direct.parse(role) == ("", None)  # not a first token
    token: dict[str, object] = {"choices": [{"index": 0, "delta": {"content": " word"}}]}
    assert direct.parse(token) == (" word", None)
    assert direct.parse({"choices": [], "usage": {"completion_tokens": 64}}) == ("", 64)
