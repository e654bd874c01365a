"""Subspace match (Wang et al. 2018; METHODS.md §5): maximum and simple ε-approximate matches
between the neurons of two layers, the maximal and minimal ε, and the conv-layer protocol,
computed in Gram space from one streamed float64 pass over the samples."""

from .conv import ConvSubspaceMatch, conv_max_match, positions
from .gram import SubspaceGram, subspace_gram
from .match import SubspaceMatch, max_match, maximal_epsilon, minimal_epsilon, simple_match

__all__ = ["max_match", "simple_match", "maximal_epsilon", "minimal_epsilon", "SubspaceMatch", "SubspaceGram",
           "subspace_gram", "conv_max_match", "ConvSubspaceMatch", "positions"]
