"""Neuron matching (METHODS.md §3): exact linear assignment and the matching of units by their
correlations (one-to-one, semi, greedy as in Akbarinia & Gegenfurtner's code, global greedy)
and the sparse route for very wide layers (top-k candidates, exact on that graph)."""

from .assignment import linear_assignment, sparse_assignment
from .neurons import MATCH_METHODS, NeuronMatching, match_neurons

__all__ = ["linear_assignment", "sparse_assignment", "match_neurons", "NeuronMatching", "MATCH_METHODS"]
