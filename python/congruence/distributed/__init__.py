"""Beyond one machine: the pairwise engine and the streamed statistics on Dask (issue 9).

``import congruence`` never imports dask; this subpackage does, when used
(``pip install congruence[dask]``). Inputs are ``dask.array`` arrays, samples along axis 0 and
features along axis 1 (points along axis 0 for :func:`knn`), chunked along either or both;
results are computed with whatever scheduler is active (a ``dask.distributed.Client`` when one
exists). The single-machine functions (``cg.correlation``, ``cg.topk_correlation``, ...,
``CrossStats.update`` and the measures that work from a ``CrossStats``) hand dask inputs here, so
most users never import this module; it holds the Dask-only knobs.

- :func:`correlation`, :func:`topk_correlation`, :func:`max_correlation`,
  :func:`correlation_pairs`: the output-block decomposition of DESIGN §6 — every task runs on one
  column block of X against one of Y and returns only its reduced result (top-k lists, pairs, or
  the dense block of a lazy dask array); top-k lists meet in a tree merge in the library's order
  (value descending, ties to the lowest global index). Inputs chunked along samples either gather
  whole columns per task or reduce float64 partial products over the sample chunks
  (``samples=``; see :mod:`._blocks`).
- :func:`knn`: the same over blocks of points (``dims=`` for points chunked along dimensions).
- :func:`cross_stats`: per-sample-chunk :class:`~congruence.CrossStats` states combined by a tree
  reduction with the exact merge, so CKA, CCA, Procrustes and the rest run on data that never
  sits on one machine.
"""

from .cross_stats import cross_stats
from .neighbors import knn
from .pairwise import correlation, correlation_pairs, max_correlation, topk_correlation

__all__ = ["correlation", "topk_correlation", "max_correlation", "correlation_pairs", "knn", "cross_stats"]
