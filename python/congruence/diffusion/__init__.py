"""Diffusion maps and transformations between networks (METHODS.md §6; Bertalan, Dietrich &
Kevrekidis 2020).

- :mod:`.kernel`: the kNN-sparsified Gaussian kernel (median or Berry–Giannakis–Harlim bandwidth,
  symmetrisation); :mod:`.mahalanobis`: the Mahalanobis-like kernel on the same candidate graph
  (local covariances from Jacobians, covariances or perturbation clouds).
- :class:`DiffusionMap`: α- and Markov normalisation, seeded Lanczos eigenpairs with a
  deterministic sign convention, diffusion time, Nyström extension.
- :func:`llr_selection`: local linear regression selection of non-harmonic eigenvectors;
  :class:`GeometricHarmonics`: out-of-sample extension of functions.
- :func:`intrinsic_coordinates`, :class:`TransformationMap` (arrays) and :func:`transformation`
  (torch networks): the map from network A's observations to network B's through A's intrinsic
  coordinates, its held-out error and the ``equivalent`` verdict.
"""

from .diffusion_map import DiffusionMap
from .harmonics import GeometricHarmonics
from .kernel import GaussianKernel, KernelBandwidthWarning, bgh_epsilon, knn_gaussian_kernel
from .llr import LLRSelection, llr_selection
from .mahalanobis import (CovarianceFactors, factors_from_clouds, factors_from_covariances, factors_from_jacobians,
                          mahalanobis_knn_kernel, model_jacobians)
from .network_transformation import Transformation, transformation
from .observables import observe, select_neurons
from .transformation import (EQUIVALENCE_THRESHOLD, IntrinsicCoordinates, TransformationMap, TransformationWarning,
                             intrinsic_coordinates)

__all__ = ["DiffusionMap", "GaussianKernel", "KernelBandwidthWarning", "knn_gaussian_kernel", "bgh_epsilon",
           "CovarianceFactors", "factors_from_jacobians", "factors_from_covariances", "factors_from_clouds",
           "model_jacobians", "mahalanobis_knn_kernel", "llr_selection", "LLRSelection", "GeometricHarmonics",
           "intrinsic_coordinates", "IntrinsicCoordinates", "TransformationMap", "TransformationWarning",
           "EQUIVALENCE_THRESHOLD", "transformation", "Transformation", "observe", "select_neurons"]
