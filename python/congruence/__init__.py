"""congruence: compare neural networks — representations, weights, behaviour — at scale.

The foundation layer: array interop, per-feature statistics, streamed cross statistics and the
tiled pairwise engine (dense, top-k, max, threshold pairs, kNN), on compiled C++ kernels.
"""

from ._engine import ConstantFeatureWarning
from ._info import cuda_available, info
from ._resources import MemoryBudgetError
from .cross_stats import CrossStats
from .neighbors import knn
from .pairwise import correlation, correlation_pairs, max_correlation, topk_correlation
from .stats import ColumnStats, column_stats

from ._cpu import version as __version__

__all__ = [
    "ColumnStats",
    "ConstantFeatureWarning",
    "CrossStats",
    "MemoryBudgetError",
    "column_stats",
    "correlation",
    "correlation_pairs",
    "cuda_available",
    "info",
    "knn",
    "max_correlation",
    "topk_correlation",
]
