"""congruence: compare neural networks — representations, weights, behaviour — at scale.

The foundation layer: array interop, per-feature statistics, streamed cross statistics and the
tiled pairwise engine (dense, top-k, max, threshold pairs, kNN), on compiled C++ (and CUDA)
kernels; and the representational-similarity measures of :mod:`congruence.similarity` (CKA, CCA,
SVCCA, PWCCA, regression R², Procrustes, RSA, mutual kNN), also exported here.
"""

from ._engine import ConstantFeatureWarning
from ._info import cuda_available, info
from ._resources import MemoryBudgetError
from .cross_stats import CrossStats
from .neighbors import knn
from .pairwise import correlation, correlation_pairs, max_correlation, topk_correlation
from .stats import ColumnStats, column_stats
from .comparison import Comparison, compare, compare_activations
from .matching import NeuronMatching, linear_assignment, match_neurons
from .agreement import agreement_matrix, error_consistency
from .diffusion import DiffusionMap, transformation
from .subspace import SubspaceMatch, max_match, maximal_epsilon, minimal_epsilon, simple_match
from .similarity import (
    HSICStats, cca, debiased_cka, linear_cka, linear_regression_r2, minibatch_cka, mutual_knn, procrustes, pwcca,
    rbf_cka, rsa, svcca,
)

from ._cpu import version as __version__

__all__ = [
    "agreement_matrix",
    "error_consistency",
    "DiffusionMap",
    "transformation",
    "linear_assignment",
    "match_neurons",
    "max_match",
    "simple_match",
    "maximal_epsilon",
    "minimal_epsilon",
    "SubspaceMatch",
    "NeuronMatching",
    "ColumnStats",
    "Comparison",
    "HSICStats",
    "ConstantFeatureWarning",
    "CrossStats",
    "MemoryBudgetError",
    "cca",
    "column_stats",
    "compare",
    "compare_activations",
    "correlation",
    "correlation_pairs",
    "cuda_available",
    "debiased_cka",
    "info",
    "knn",
    "linear_cka",
    "linear_regression_r2",
    "max_correlation",
    "minibatch_cka",
    "mutual_knn",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "rsa",
    "svcca",
    "topk_correlation",
]
