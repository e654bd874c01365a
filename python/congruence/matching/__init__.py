"""Neuron matching (METHODS.md §3): exact linear assignment and the matching of units by their
correlations (one-to-one, semi, greedy as in Akbarinia & Gegenfurtner's code, global greedy)
and the sparse route for very wide layers (top-k candidates, exact on that graph), and Li et
al.'s mutual information between units; weight-space kernel similarity (Akbarinia &
Gegenfurtner 2019); permutation alignment of traced module graphs — MLPs, VGG-style CNNs, ResNets (activation and
weight matching); the linear interpolation barrier with BatchNorm re-estimation; the rotation and
shared-frozen-layer protocols of Brown, Vyas & Bansal."""

from .assignment import linear_assignment, sparse_assignment
from .barrier import InterpolationBarrier, interpolation_barrier
from .kernel_similarity import KERNEL_MATCHES, KernelSimilarity, kernel_similarity, kernel_similarity_matrix
from .mutual_information import mutual_information, mutual_information_matrix, percentile_bins
from .neurons import MATCH_METHODS, NeuronMatching, match_neurons
from .permutation import align_activations, align_weights, permutation_groups, permute_model
from .protocols import absorb_rotation, haar_orthogonal, rotate_layer, share_frozen_layers

__all__ = ["linear_assignment", "sparse_assignment", "match_neurons", "NeuronMatching", "MATCH_METHODS", "mutual_information",
           "mutual_information_matrix", "percentile_bins",
           "kernel_similarity", "kernel_similarity_matrix", "KernelSimilarity", "KERNEL_MATCHES",
           "align_activations", "align_weights", "permutation_groups", "permute_model",
           "interpolation_barrier", "InterpolationBarrier",
           "absorb_rotation", "haar_orthogonal", "rotate_layer", "share_frozen_layers"]
