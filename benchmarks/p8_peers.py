"""Run one diffusion-map peer package on points saved as .npy and print one JSON line (benchmark P8).

Standalone on purpose: it runs under another interpreter (``CONGRUENCE_PEER_PYTHON``), whose
environment holds datafold / pyDiffMap and their pinned numpy/scipy/scikit-learn, and needs
nothing but numpy and the peer. Usage::

    python benchmarks/p8_peers.py --peer datafold --data X.npy --epsilon 9.33 [--k 32] [--m 10]
        [--alpha 1.0] [--repeats 1] [--budget 300] [--threads 2] [--evecs-out psi.npy]

The kernel is the library's exp(−d²/(2ε)) on each point's k nearest neighbours plus itself, with
the ε given (the one congruence found by its median rule):

* datafold: ``dynfold.DiffusionMaps(pcfold.GaussianKernel(epsilon=ε, distance=SklearnKNN(
  metric="sqeuclidean", k=k+1)), n_eigenpairs=m+1, alpha=α, symmetrize_kernel=True)``.
  GaussianKernel is exp(−D/(2ε)) with D the squared distance: ε is passed unchanged.
  ``SklearnKNN``'s k counts the point itself (k−1 neighbours + the diagonal), hence k+1. The
  distance object is passed directly because ``GaussianKernel(distance=dict(backend="sklearn.knn",
  k=...))`` fails in datafold 2.0.2 (``init_distance_algorithm`` renames k to kmin, which
  SklearnKNN does not take). datafold does not symmetrise a kNN kernel (the kNN distance matrix is
  not symmetric, so ``symmetrize_kernel`` has no effect): its Markov matrix differs from ours.
  Its eigenvalues are those of the Markov matrix (λ_0 = 1 first).
* pyDiffMap: ``diffusion_map.DiffusionMap.from_sklearn(n_evecs=m, k=k+1, epsilon=ε/2, alpha=α)``.
  Its Gaussian kernel is exp(−d²/(4ε')), so ε' = ε/2 gives the same kernel; its k also counts
  the point itself (``kneighbors_graph`` of the training points), hence k+1; it symmetrises by
  the maximum, max(K, Kᵀ) (fixed in ``from_sklearn``), where ours averages. Its eigenvalues are
  those of the generator L = (P − I)/ε' without the top one, so λ_k = 1 + ε'·ℓ_k.

Both use scikit-learn's brute-force kNN with ``n_jobs=threads``. Printed: ``{"peer", "version",
"status", "seconds" (median of the fits), "times_s", "import_s", "warmup": false, "eigenvalues"
(λ_1..λ_m in the Markov convention), "eigenvalues_raw"}``; with ``--evecs-out`` the peer's ψ_1..ψ_m
(N, m) are saved there. On an import error: status "not installed" and the error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback


def _datafold(X, eps, k, m, alpha, threads):
    from datafold import dynfold, pcfold
    from datafold.pcfold.distance import SklearnKNN

    kernel = pcfold.GaussianKernel(epsilon=eps, distance=SklearnKNN(metric="sqeuclidean", k=k + 1, n_jobs=threads))
    dm = dynfold.DiffusionMaps(kernel, n_eigenpairs=m + 1, alpha=alpha, symmetrize_kernel=True).fit(X)

    def result():
        import numpy as np

        w = np.asarray(dm.eigenvalues_, dtype=float)
        V = np.asarray(dm.eigenvectors_, dtype=float)
        order = np.argsort(w)[::-1]
        w, V = w[order], V[:, order]
        return w[1:m + 1], w, V[:, 1:m + 1]

    return result


def _pydiffmap(X, eps, k, m, alpha, threads):
    from pydiffmap import diffusion_map

    eps_pd = eps / 2.0
    dm = diffusion_map.DiffusionMap.from_sklearn(n_evecs=m, k=k + 1, epsilon=eps_pd, alpha=alpha,
                                                 neighbor_params={"n_jobs": threads}).fit(X)

    def result():
        import numpy as np

        raw = np.asarray(dm.evals, dtype=float)
        lam = 1.0 + eps_pd * raw
        V = np.asarray(dm.evecs, dtype=float)
        order = np.argsort(lam)[::-1]
        return lam[order], raw, V[:, order]

    return result


PEERS = {"datafold": ("datafold", _datafold), "pydiffmap": ("pydiffmap", _pydiffmap)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--peer", required=True, choices=sorted(PEERS))
    p.add_argument("--data", required=True)
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--m", type=int, default=10)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--budget", type=float, default=300.0, help="start no further fit after this many seconds")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--evecs-out", default=None)
    a = p.parse_args(argv)
    module, fit = PEERS[a.peer]
    out = {"peer": a.peer, "python": sys.executable, "warmup": False}
    t0 = time.perf_counter()
    try:
        import numpy as np

        mod = __import__(module)
        out["version"] = getattr(mod, "__version__", None)
        if out["version"] is None:
            from importlib import metadata

            out["version"] = metadata.version(module)
    except Exception as e:  # noqa: BLE001
        out.update(status="not installed", reason=f"{type(e).__name__}: {e}")
        print(json.dumps(out))
        return 0
    out["import_s"] = time.perf_counter() - t0
    X = np.load(a.data)
    out["shape"] = list(X.shape)
    times = []
    result = None
    try:
        start = time.perf_counter()
        for _ in range(max(1, a.repeats)):
            t = time.perf_counter()
            result = fit(X, a.epsilon, a.k, a.m, a.alpha, a.threads)
            times.append(time.perf_counter() - t)
            if time.perf_counter() - start > a.budget:
                break
        lam, raw, V = result()
    except Exception as e:  # noqa: BLE001
        out.update(status="failed", reason=f"{type(e).__name__}: {e}", times_s=times,
                   traceback=traceback.format_exc(limit=6))
        print(json.dumps(out))
        return 0
    out.update(status="ok", seconds=statistics.median(times), times_s=times,
               eigenvalues=[float(v) for v in lam], eigenvalues_raw=[float(v) for v in raw])
    if a.evecs_out:
        np.save(a.evecs_out, np.ascontiguousarray(V))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
