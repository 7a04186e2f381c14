"""Models that take turns on one GPU: see `engine.swap.group`."""

from engine.swap.group import SwapGroup
from engine.swap.member import SwapMember, SwapMethod

__all__ = ["SwapGroup", "SwapMember", "SwapMethod"]
