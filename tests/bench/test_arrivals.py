"""The benchmarks' arrival times: a closed loop, or Poisson arrivals as `vllm bench serve` sends."""

import itertools
import statistics

from bench.compare import arrivals


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
