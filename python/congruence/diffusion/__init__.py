"""Diffusion maps (METHODS.md §6): the kNN-sparsified Gaussian kernel and the DiffusionMap
estimator (α-normalisation, Markov normalisation, eigenpairs with a deterministic sign
convention, diffusion time, Nyström extension). The Mahalanobis-like kernel, local linear
regression selection and network-to-network transformations (issue 7) follow."""

from .diffusion_map import DiffusionMap
from .kernel import GaussianKernel, KernelBandwidthWarning, knn_gaussian_kernel

__all__ = ["DiffusionMap", "GaussianKernel", "KernelBandwidthWarning", "knn_gaussian_kernel"]
