"""Beyond one machine: the pairwise engine and the streamed statistics on Dask (issue 9, first part).

``import congruence`` never imports dask; this subpackage does, when used
(``pip install congruence[dask]``). Inputs are ``dask.array`` arrays, samples along axis 0 and
features along axis 1, chunked along either or both; results are computed with whatever scheduler
is active (a ``dask.distributed.Client`` when one exists) and returned as numpy arrays or a
:class:`~congruence.CrossStats`, because the reduced results are small.

- :func:`topk_correlation`: the output-block decomposition of METHODS/DESIGN §6 — every task runs
  the single-node compiled engine on one column block of X against one of Y and returns only its
  top-k lists; a tree merge combines a row block's lists with the library's order (value
  descending, ties to the lowest global index). No task holds more than its two blocks, and no
  n_x × n_y array exists anywhere.
- :func:`cross_stats`: per-sample-chunk :class:`~congruence.CrossStats` states combined by a tree
  reduction with the exact merge, so CKA, CCA, Procrustes and the rest run on data that never
  sits on one machine.
"""

from .cross_stats import cross_stats
from .neighbors import knn
from .pairwise import correlation, correlation_pairs, max_correlation, topk_correlation

__all__ = ["correlation", "topk_correlation", "max_correlation", "correlation_pairs", "knn", "cross_stats"]
