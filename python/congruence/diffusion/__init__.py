"""Diffusion maps (METHODS.md §6): the kNN-sparsified Gaussian kernel, the Mahalanobis-like kernel
on the same candidate graph (local covariances from Jacobians, covariances or perturbation clouds)
and the DiffusionMap estimator (α-normalisation, Markov normalisation, eigenpairs with a
deterministic sign convention, diffusion time, Nyström extension) and the local linear
regression selection of non-harmonic eigenvectors, and geometric harmonics. Network-to-network transformations (issue 7)
follow."""

from .diffusion_map import DiffusionMap
from .harmonics import GeometricHarmonics
from .llr import LLRSelection, llr_selection
from .kernel import GaussianKernel, KernelBandwidthWarning, knn_gaussian_kernel
from .mahalanobis import (CovarianceFactors, factors_from_clouds, factors_from_covariances, factors_from_jacobians,
                          mahalanobis_knn_kernel, model_jacobians)

__all__ = ["DiffusionMap", "GaussianKernel", "KernelBandwidthWarning", "knn_gaussian_kernel", "CovarianceFactors",
           "factors_from_jacobians", "factors_from_covariances", "factors_from_clouds", "model_jacobians",
           "mahalanobis_knn_kernel", "llr_selection", "LLRSelection",
           "GeometricHarmonics"]
