"""Pairs of rounds of both orders cancel the order's own effect."""

import argparse

import pytest

from bench.rounds import alternating, even_rounds, paired_differences, paired_ratios


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
