"""Pairs of rounds of both orders cancel the order's own effect."""

import argparse

import pytest

from bench.rounds import alternating, even_rounds, interval, paired_differences, paired_ratios


def test_an_order_effect_that_multiplies_cancels_within_a_pair() -> None:
    # True ratio 0.9; going first costs the server 20 %, in rounds of alternating order.
    per_round = [0.9 * 0.8, 0.9 / 0.8, 0.9 * 0.8, 0.9 / 0.8]

    assert paired_ratios(per_round) == pytest.approx([0.9, 0.9])


def test_an_order_effect_that_adds_cancels_within_a_pair() -> None:
    per_round = [5 + 300, 5 - 300, 5 + 280, 5 - 280]

    assert paired_differences(per_round) == [5, 5]


def test_rounds_come_in_pairs() -> None:
    with pytest.raises(ValueError, match="pairs"):
        paired_ratios([1.0, 1.0, 1.0])
    assert even_rounds("8") == 8
    for odd in ("7", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            even_rounds(odd)


def test_rounds_alternate_their_order() -> None:
    assert alternating(["ours", "relay", "direct"], 3) == [
        ["ours", "relay", "direct"],
        ["direct", "relay", "ours"],
        ["ours", "relay", "direct"],
    ]


def test_the_interval_holds_the_median_and_narrows_with_more_pairs() -> None:
    few = [0.8, 1.2, 0.9, 1.1, 1.0, 0.85]
    many = few * 10

    low, high = interval(few)
    assert low <= 0.95 <= high  # the median of `few`, between 0.9 and 1.0
    many_low, many_high = interval(many)
    assert low <= many_low <= many_high <= high
    assert many_high - many_low < high - low
    assert interval(few) == (low, high)  # seeded
