"""Representational similarity between two sets of activations (METHODS.md §2).

Feature-space measures, exact from streamed statistics (a :class:`~congruence.CrossStats`, or an
:class:`HSICStats` for debiased CKA) as well as from arrays: :func:`linear_cka`,
:func:`debiased_cka`, :func:`cca`, :func:`svcca`, :func:`pwcca`, :func:`linear_regression_r2`,
:func:`procrustes`. Sample-space measures: :func:`rbf_cka`, :func:`rsa` (and its Euclidean RDM
variants), :func:`mutual_knn`, and the labelled estimator :func:`minibatch_cka`.

Every measure carries ``fn.info`` (:class:`MeasureInfo`: declared invariances, symmetry,
streamability) and is listed in :data:`REGISTRY`.
"""

from ._common import DegenerateCCAWarning, UndefinedSimilarityWarning
from ._measure import INVARIANCES, REGISTRY, MeasureInfo
from .cca import CCAResult, SVCCAResult, cca, pwcca, svcca
from .cka import debiased_cka, linear_cka
from .hsic_stats import HSICStats
from .kernel_cka import DroppedBatchWarning, RBFCKADetails, SampledMedianWarning, minibatch_cka, rbf_cka
from .linear import linear_regression_r2, procrustes
from .neighbors_alignment import mutual_knn, mutual_knn_chance, mutual_knn_euclidean
from .rsa import rsa, rsa_euclidean, rsa_sqeuclidean

__all__ = [
    "CCAResult", "DegenerateCCAWarning", "DroppedBatchWarning", "HSICStats", "INVARIANCES", "MeasureInfo",
    "RBFCKADetails", "REGISTRY", "SVCCAResult", "SampledMedianWarning", "UndefinedSimilarityWarning", "cca",
    "debiased_cka", "linear_cka", "linear_regression_r2", "minibatch_cka", "mutual_knn", "mutual_knn_chance",
    "mutual_knn_euclidean", "procrustes", "pwcca", "rbf_cka", "rsa", "rsa_euclidean", "rsa_sqeuclidean", "svcca",
]
