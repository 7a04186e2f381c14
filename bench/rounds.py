"""Comparing two servers measured in alternating rounds, with the order's effect taken out.

Rounds alternate which server goes first (AB, BA, AB, ...). Going first or second is not neutral
on this machine: the run after another one on the same replicas starts from a different state
(caches, queues, the CPU's other tenants), and a per-round ratio swings with the order by far
more than the servers differ. So rounds are taken in pairs, one of each order, and a pair's
ratio is the geometric mean of its two rounds' ratios (its difference, their mean): an order
effect that multiplies (or adds) cancels within the pair. The figures reported are the medians
over the pairs, with a bootstrap interval: how far that median would move with other rounds.
"""

import argparse
import math
import random
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def alternating(paths: Sequence[T], rounds: int) -> list[list[T]]:
    """The order of each round: as given, then reversed, and so on. The first and the last
    swap places from one round to the next; a path in the middle stays there."""
    return [list(paths) if index % 2 == 0 else list(paths)[::-1] for index in range(rounds)]


def paired_ratios(ratios: Sequence[float]) -> list[float]:
    """Per-pair ratios from per-round ratios (rounds 1-2, 3-4, ...)."""
    return [math.sqrt(a * b) for a, b in _pairs(ratios)]


def paired_differences(differences: Sequence[float]) -> list[float]:
    """Per-pair differences from per-round differences (rounds 1-2, 3-4, ...)."""
    return [(a + b) / 2 for a, b in _pairs(differences)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def interval(values: Sequence[float], confidence: float = 0.9) -> tuple[float, float]:
    """The bootstrap interval of the median of `values` (one per pair): the range holding
    `confidence` of the medians of 2000 resamples of them, with replacement (seeded: the same
    values give the same interval). At concurrency 1 a pair's ratio swings by 20 % either way
    with the replicas' pace; the interval says whether the median is still clear of a target."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(2000))
    tail = round(len(medians) * (1 - confidence) / 2)
    return medians[tail], medians[len(medians) - 1 - tail]


def even_rounds(text: str) -> int:
    """argparse type: a positive even number of rounds (pairs of both orders)."""
    rounds = int(text)
    if rounds < 2 or rounds % 2:
        raise argparse.ArgumentTypeError("rounds come in pairs (one of each order): an even number")
    return rounds


def _pairs(values: Sequence[float]) -> list[tuple[float, float]]:
    if len(values) % 2:
        raise ValueError("rounds come in pairs")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
