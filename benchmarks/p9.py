"""P9: agreement matrices of many classifiers (issue 8).

* P9A — top-1 agreement between every pair of K = 1,000 models on n = 100,000 examples
  (10 classes): ours ``congruence.agreement_matrix`` (labels bit-sliced into ⌈log₂ 10⌉ = 4 planes,
  equality counts popcount(valid & ~OR_p(f_p ^ g_p)) by the compiled AVX-512 VPOPCNTQ kernel over
  the upper triangle) against ``baselines.agreement_matrix_torch`` (one float32 product of 0/1
  class indicators per class, 2·K²·n·C FLOPs). Identical matrices required. Target ≥ 10×.
* P9B — Cohen's κ error consistency of the same models from their correctness: ours
  ``congruence.error_consistency`` (bit-packed rows, both-right counts popcount(c_f & c_g))
  against ``baselines.error_consistency_torch`` (one float32 product, 2·K²·n FLOPs). Target ≥ 10×.

Data (seeded): true labels uniform over 10 classes; model i is right with probability p_i ~ U(0.6,
0.95) per example, else predicts a uniformly drawn wrong class. Ours gets numpy arrays (int32
predictions, bool correctness) and includes the bit packing in its time; the baseline gets
zero-copy torch views.
"""

from __future__ import annotations

import numpy as np

from . import harness as H

P9_SIZES = {"full": (1000, 100_000), "quick": (300, 30_000), "smoke": (40, 2000)}  # (models, examples)
CLASSES = 10


def ensemble_predictions(K: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(predictions int32 (K, n), correctness bool (K, n)) of K simulated classifiers."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n, dtype=np.int32)
    p = rng.uniform(0.6, 0.95, K)
    pred = np.empty((K, n), np.int32)
    for i in range(K):
        right = rng.random(n) < p[i]
        wrong = (y + rng.integers(1, CLASSES, n, dtype=np.int32)) % CLASSES
        pred[i] = np.where(right, y, wrong)
    return pred, pred == y[None, :]


def build(variant: str):
    def builder(ctx) -> H.Plan:
        return _build(ctx, variant)

    return builder


def _build(ctx, variant: str) -> H.Plan:
    import torch

    K, n = P9_SIZES[ctx.mode]
    pred, correct = ensemble_predictions(K, n, seed=ctx.seed + 90)
    cache: dict = {}
    if variant == "P9A":
        fn, ours_fail = ctx.ours("agreement_matrix")
        base, base_fail, base_nr = ctx.base("agreement_matrix_torch")
        tp = torch.from_numpy(pred)

        def ours():
            return fn(pred, n_classes=CLASSES)

        def baseline():
            return base(tp, CLASSES)

        flops = 2.0 * K * K * n * CLASSES
        title = f"top-1 agreement matrix of {K} classifiers: bit-sliced popcount vs per-class float32 products"
    else:
        fn, ours_fail = ctx.ours("error_consistency")
        base, base_fail, base_nr = ctx.base("error_consistency_torch")
        tc = torch.from_numpy(correct)

        def ours():
            return fn(correct).kappa

        def baseline():
            return base(tc)

        flops = 2.0 * K * K * n
        title = f"Cohen's kappa error-consistency matrix of {K} classifiers: popcount vs one float32 product"

    def check(side, res):
        M = res.numpy() if hasattr(res, "numpy") else np.asarray(res)
        cache[side] = M
        out = {"symmetric": bool(np.array_equal(M, M.T))}
        if "ours" in cache and "baseline" in cache:
            out["max_abs_err"] = float(np.nanmax(np.abs(cache["ours"] - cache["baseline"])))
        return out

    targets = [H.Target(ctx.label("baseline / ours >= 10"), lambda rec: rec.get("ratio"), ">=", 10.0),
               H.Target(ctx.label("max |ours - baseline| <= 1e-12"), _max_err, "<=", 1e-12)]
    return H.Plan(
        name=variant,
        title=title,
        size=f"K={K} models, n={n} examples, {CLASSES} classes",
        params={"K": K, "n": n, "classes": CLASSES},
        ours=ours if fn else None,
        base=baseline if (base and base_nr is None) else None,
        ours_failed=ours_fail,
        base_failed=base_fail if base_nr is None else None,
        base_not_run=base_nr,
        check=check,
        flops=flops,
        targets=targets,
        notes=["predicted: the baseline's matmul FLOPs at the measured float32 rate (ours is popcount work, "
               f"{K * (K + 1) // 2 * -(-n // 64) * (4 if variant == 'P9A' else 1):.3g} word operations)"],
        repeats_cap={"full": 5, "quick": 5, "smoke": 1}[ctx.mode],
        time_budget_s={"full": 300.0, "quick": 60.0, "smoke": 10.0}[ctx.mode],
    )


def _max_err(rec):
    for side in ("baseline", "ours"):
        v = (rec["sides"][side].get("errors") or {}).get("max_abs_err")
        if v is not None:
            return v
    return None
