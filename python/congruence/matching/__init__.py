"""Neuron matching (METHODS.md §3): exact linear assignment; matching of units, semi-matching,
greedy matching and the sparse route follow (issue 5)."""

from .assignment import linear_assignment

__all__ = ["linear_assignment"]
