"""The benchmark cases. Each builder takes the run :class:`Context` and returns a
:class:`harness.Plan` holding the prepared data, both callables, the check and the targets.

Data are float32, ``(n_samples, n_features)``, C-contiguous numpy arrays generated chunk-wise into
preallocated memory (low-rank signal + noise, so maxima are meaningful). ``ours`` receives the
numpy arrays; the baseline receives zero-copy torch views of the same memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import harness as H

F32 = 4  # bytes per float32


@dataclass
class Context:
    mode: str  # "full" | "quick" | "smoke"
    threads: int
    seed: int = 0
    cg: Any = None  # the congruence module, or None
    cg_error: Optional[str] = None
    baselines: Any = None  # congruence.baselines, or None
    baselines_error: Optional[str] = None
    fake: bool = False  # developer self-test: stand-ins where the real functions are missing
    sgemm: dict = field(default_factory=dict)
    bandwidth: dict = field(default_factory=dict)
    sampler_interval: float = 1e-3
    flags: set = field(default_factory=set)

    # --- resolving the two sides ---------------------------------------------------------------
    def ours(self, name: str):
        """(callable, failure reason) for congruence.<name>; num_threads is bound."""
        fn = None
        why = None
        if self.cg is None:
            why = f"congruence not importable: {self.cg_error}"
        else:
            fn = getattr(self.cg, name, None)
            if fn is None:
                why = f"congruence.{name} is missing"
        if fn is None and self.fake:
            from . import _fakes

            return getattr(_fakes, name), None
        if fn is None:
            return None, why
        threads = self.threads

        def call(*a, **kw):
            return fn(*a, num_threads=threads, **kw)

        return call, None

    def base(self, name: str):
        """(callable, failure reason, not-run reason) for congruence.baselines.<name>. A missing
        torch is an environment limit (not run), anything else a failure."""
        if not _torch_ok():
            return None, None, "torch is not installed (the baselines are PyTorch pipelines)"
        fn = None
        why = None
        if self.baselines is None:
            why = f"congruence.baselines not importable: {self.baselines_error}"
        else:
            fn = getattr(self.baselines, name, None)
            if fn is None:
                why = f"congruence.baselines.{name} is missing"
        if fn is None and self.fake:
            from . import _fakes

            return getattr(_fakes, name), None, None
        return fn, why, None

    def label(self, text: str) -> str:
        return text if self.mode == "full" else f"{text} ({self.mode} size)"


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def make_pair(
    m: int,
    nx: int,
    ny: int,
    *,
    seed: int,
    rank: int = 64,
    signal: float = 1.0,
    noise: float = 1.0,
    offset: float = 0.0,
    planted: int = 0,
    planted_noise: float = 0.3,
    row_chunk: int = 128,
):
    """X (m, nx), Y (m, ny) float32: shared rank-``rank`` latent signal + independent noise, plus
    ``planted`` Y features that are noisy copies of chosen X features (unique strong partners).
    Generated row-chunk by row-chunk into preallocated arrays (no float64 temporaries)."""
    rng = np.random.default_rng(seed)
    X = np.empty((m, nx), np.float32)
    Y = np.empty((m, ny), np.float32)
    Z = rng.standard_normal((m, rank), dtype=np.float32)
    s = np.float32(signal / math.sqrt(rank))
    Ax = rng.standard_normal((rank, nx), dtype=np.float32) * s
    Ay = rng.standard_normal((rank, ny), dtype=np.float32) * s
    px = rng.choice(nx, size=planted, replace=False) if planted else np.zeros(0, np.int64)
    py = rng.choice(ny, size=planted, replace=False) if planted else np.zeros(0, np.int64)
    for r0 in range(0, m, row_chunk):
        r1 = min(m, r0 + row_chunk)
        for A, L in ((X, Ax), (Y, Ay)):
            blk = A[r0:r1]
            rng.standard_normal(out=blk, dtype=np.float32)
            if noise != 1.0:
                blk *= np.float32(noise)
            blk += Z[r0:r1] @ L
        if planted:
            Y[r0:r1, py] = X[r0:r1][:, px] + np.float32(planted_noise) * rng.standard_normal(
                (r1 - r0, planted), dtype=np.float32
            )
        if offset:
            X[r0:r1] += np.float32(offset)
            Y[r0:r1] += np.float32(offset)
    return X, Y, px, py


def _torch_ok() -> bool:
    try:
        import torch  # noqa: F401

        return True
    except ImportError:
        return False


def _torch_views(*arrays):
    """Zero-copy torch views of numpy arrays (Nones without torch)."""
    if not _torch_ok():
        return tuple(None for _ in arrays)
    import torch

    return tuple(torch.from_numpy(a) for a in arrays)


def _subset(n: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 12345)
    return np.sort(rng.choice(n, size=min(n, count), replace=False))


def _mem_guard(need: int, what: str, other: int = 0, other_what: str = "") -> Optional[str]:
    """Reason not to run a side whose estimated peak (need + other bytes) exceeds 80% of the
    available RAM, or None when it fits."""
    avail = H.mem_available_bytes()
    total = H.mem_total_bytes()
    if avail is not None and need + other > 0.8 * avail:
        more = f" (+{other / 1e9:.1f} GB {other_what})" if other else ""
        return (
            f"needs {what} = {need / 1e9:.1f} GB ({H.fmt_bytes(need)}){more} > RAM "
            f"({H.fmt_bytes(total)} total, {H.fmt_bytes(avail)} available)"
        )
    return None


def _pair_tuple(res):
    if isinstance(res, tuple) and len(res) == 2:
        return H.to_numpy(res[0]), H.to_numpy(res[1])
    if hasattr(res, "values") and hasattr(res, "indices"):  # torch.return_types
        return H.to_numpy(res.values), H.to_numpy(res.indices)
    raise TypeError(f"expected (values, indices), got {type(res).__name__}")


def _side_metric(side: str, key: str):
    def f(rec):
        return rec["sides"][side].get(key)

    return f


def _err_metric(side: str, key: str = "max_abs_err"):
    def f(rec):
        v = (rec["sides"][side].get("errors") or {}).get(key)
        return float(v) if isinstance(v, (int, float)) else None

    return f


def _ratio(rec):
    return rec.get("ratio")


def _mem_fraction(rec):
    o = rec["sides"]["ours"].get("peak_extra_max_bytes")
    b = rec["sides"]["baseline"].get("peak_extra_max_bytes")
    if o is None or not b:
        return None
    return o / b


# ----------------------------------------------------------------------------------------------
# P1 dense correlation
# ----------------------------------------------------------------------------------------------

P1_SIZES = {"full": (4096, 4096), "quick": (2048, 2048), "smoke": (512, 512)}  # (m, n)


def build_p1(ctx: Context) -> H.Plan:
    m, n = P1_SIZES[ctx.mode]
    X, Y, _, _ = make_pair(m, n, n, seed=ctx.seed + 1)
    Xt, Yt = _torch_views(X, Y)
    ours, ours_fail = ctx.ours("correlation")
    base, base_fail, base_nr = ctx.base("correlation")
    rows = _subset(n, 256 if ctx.mode != "smoke" else 64, ctx.seed)
    ref_cache: dict = {}

    def check(side, res):
        R = H.to_numpy(res)
        if R.shape != (n, n):
            return {"shape_error": f"got {R.shape}, expected {(n, n)}"}
        if "ref" not in ref_cache:
            ref_cache["ref"] = H.corr64(X[:, rows], Y)
        return {"max_abs_err": H.max_abs(R[rows].astype(np.float64) - ref_cache["ref"]), "rows_checked": len(rows)}

    in_bytes = (m * n * 2) * F32
    out_bytes = n * n * F32
    return H.Plan(
        name="P1",
        title="dense correlation, float32: congruence.correlation(X, Y) vs baselines.correlation(X, Y)",
        size=f"m={m}, n_x=n_y={n}",
        params={"m": m, "n_x": n, "n_y": n, "dtype": "float32"},
        ours=(lambda: ours(X, Y)) if ours else None,
        base=(lambda: base(Xt, Yt)) if base else None,
        ours_failed=ours_fail,
        base_failed=base_fail,
        base_not_run=base_nr,
        check=check,
        flops=2.0 * m * n * n,
        traffic_bytes={"ours": 3 * in_bytes + out_bytes, "baseline": 3 * in_bytes + out_bytes},
        targets=[H.Target(ctx.label("ratio >= 0.95"), _ratio, ">=", 0.95)],
        notes=[f"error checked on {len(rows)} rows of the output against a float64 two-pass reference"],
    )


# ----------------------------------------------------------------------------------------------
# P2 top-8 correlation
# ----------------------------------------------------------------------------------------------

P2_SIZES = {"full": (2048, 16384), "quick": (1024, 8192), "smoke": (256, 1024)}


def _check_topk(X, Y, rows, k, ref_cache, values, indices, n_y, absolute=False) -> dict:
    V, I = values, indices
    if V.ndim == 1:
        V, I = V[:, None], I[:, None]
    if V.shape[0] != X.shape[1] or V.shape[1] != k:
        return {"shape_error": f"got {V.shape}, expected {(X.shape[1], k)}"}
    if "ref" not in ref_cache:
        ref_cache["ref"] = H.topk64(X[:, rows], Y, k, absolute=absolute)
    rv, ri = ref_cache["ref"]
    v = V[rows].astype(np.float64)
    idx = I[rows].astype(np.int64)
    key = np.abs(v) if absolute else v
    out = {
        "max_abs_err": H.max_abs(key - rv),  # k-th best values, as a sorted list, vs float64
        "rows_checked": len(rows),
        "idx_match_frac": float(np.mean(np.all(idx == ri, axis=1))),
        "sorted_desc": bool(np.all(np.diff(key, axis=1) <= 1e-6)) if k > 1 else True,
        "idx_in_range": bool(np.all((idx >= 0) & (idx < n_y))),
    }
    # consistency: the value reported for index j equals the float64 correlation of (i, j)
    rr = np.repeat(rows, idx.shape[1])
    pc = H.pair_corr64(X, Y, rr, idx.ravel())
    out["value_vs_own_index_err"] = H.max_abs(v.ravel() - pc)
    # agreement between the two sides on the checked rows (recorded on whichever side runs second)
    seen = ref_cache.setdefault("sides", [])
    for ov, oi in seen:
        out["other_side_idx_match_frac"] = float(np.mean(np.all(idx == oi, axis=1)))
        out["other_side_max_abs_diff"] = H.max_abs(v - ov)
    seen.append((v, idx))
    return out


def build_p2(ctx: Context) -> H.Plan:
    m, n = P2_SIZES[ctx.mode]
    k = 8
    X, Y, _, _ = make_pair(m, n, n, seed=ctx.seed + 2)
    Xt, Yt = _torch_views(X, Y)
    ours, ours_fail = ctx.ours("topk_correlation")
    base, base_fail, base_nr = ctx.base("topk_correlation")
    rows = _subset(n, 256 if ctx.mode != "smoke" else 64, ctx.seed)
    ref_cache: dict = {}

    def check(side, res):
        V, I = _pair_tuple(res)
        return _check_topk(X, Y, rows, k, ref_cache, V, I, n)

    in_bytes = (m * n * 2) * F32
    out_bytes = n * n * F32
    plan = H.Plan(
        name="P2",
        title="top-8 correlation: congruence.topk_correlation(X, Y, k=8) vs baselines.topk_correlation(X, Y, k=8)",
        size=f"m={m}, n_x=n_y={n}, k={k}",
        params={"m": m, "n_x": n, "n_y": n, "k": k, "dtype": "float32"},
        ours=(lambda: ours(X, Y, k=k)) if ours else None,
        base=(lambda: base(Xt, Yt, k=k)) if base else None,
        ours_failed=ours_fail,
        base_failed=base_fail,
        base_not_run=base_nr or _mem_guard(out_bytes, f"n_x*n_y*4 bytes = {n}*{n}*4", 2 * in_bytes, "standardised inputs"),
        check=check,
        flops=2.0 * m * n * n,
        traffic_bytes={"ours": 3 * in_bytes, "baseline": 3 * in_bytes + 2 * out_bytes},
        targets=[
            H.Target(ctx.label("ratio >= 1.3"), _ratio, ">=", 1.3),
            H.Target(ctx.label("ours peak mem / base <= 0.05"), _mem_fraction, "<=", 0.05),
        ],
        notes=[
            f"values checked on {len(rows)} rows against a float64 top-{k}; idx_match_frac counts rows whose "
            "k indices equal the float64 ones exactly (near-ties may legitimately differ)"
        ],
    )
    return plan


# ----------------------------------------------------------------------------------------------
# P3 top-1 correlation at 100k x 100k
# ----------------------------------------------------------------------------------------------

P3_SIZES = {"full": (1024, 100_000), "quick": (1024, 20_000), "smoke": (256, 1024)}
P3_SGEMM_SHAPE = {"full": (4096, 1024, 4096), "quick": (4096, 1024, 4096), "smoke": (1024, 256, 1024)}


def build_p3(ctx: Context) -> H.Plan:
    m, n = P3_SIZES[ctx.mode]
    # The floor uses matmul rates measured in this case: before the data are made, after the
    # warm-ups and after every timed round (other load on a 2-core box swings the rate by up to
    # 2x); the fastest rate seen gives the floor, so ours/floor is never flattered by a slow probe.
    shape = P3_SGEMM_SHAPE[ctx.mode]
    probes = [H.measure_sgemm(shape, reps=3 if ctx.mode != "smoke" else 2, seed=ctx.seed)]
    sg = probes[0]
    flops = 2.0 * m * n * n
    floor_s = flops / sg["rate_flops"]
    planted = max(1, n // 10)
    X, Y, px, py = make_pair(m, n, n, seed=ctx.seed + 3, planted=planted)
    ours, ours_fail = ctx.ours("max_correlation")
    base, base_fail, base_nr = ctx.base("max_correlation")
    n_check = 300 if ctx.mode != "smoke" else 64
    half = n_check // 2
    rng = np.random.default_rng(ctx.seed + 33)
    sel = rng.choice(planted, size=min(planted, half), replace=False)
    rows = np.unique(np.concatenate([px[sel], _subset(n, n_check - len(sel), ctx.seed)]))
    partner = {int(a): int(b) for a, b in zip(px, py)}
    planted_rows = np.array([r for r in rows if int(r) in partner], np.int64)
    ref_cache: dict = {}

    def check(side, res):
        V, I = _pair_tuple(res)
        if V.shape != (n,) or I.shape != (n,):
            return {"shape_error": f"got {V.shape}/{I.shape}, expected {(n,)}"}
        out = _check_topk(X, Y, rows, 1, ref_cache, V, I, n)
        if len(planted_rows):
            out["planted_idx_match_frac"] = float(
                np.mean([int(I[r]) == partner[int(r)] for r in planted_rows])
            )
        return out

    need = n * n * F32
    base_reason = base_nr or _mem_guard(need, f"n_x*n_y*4 bytes = {n}*{n}*4", 2 * m * n * F32, "standardised inputs")
    if base_reason is None and ctx.mode == "full":  # the full-size case is defined as ours-only
        base_reason = f"full-size P3 is ours-only (n_x*n_y*4 = {need / 1e9:.1f} GB)"
    notes = [
        f"{len(rows)} rows checked against float64 ({len(planted_rows)} of them with a planted partner)",
    ]
    if base_reason is None:
        notes.append("baseline fits in RAM at this size, so it is run too (no target on the ratio)")
    in_bytes = 2 * m * n * F32
    plan = H.Plan(
        name="P3",
        title="top-1 correlation (max_correlation) at large width; baseline materialises n_x*n_y",
        size=f"m={m}, n_x=n_y={n}",
        params={"m": m, "n_x": n, "n_y": n, "dtype": "float32", "planted_pairs": planted},
        ours=(lambda: ours(X, Y)) if ours else None,
        base=(lambda: base(*_torch_views(X, Y))) if (base and base_reason is None) else None,
        ours_failed=ours_fail,
        base_failed=base_fail if base_reason is None else None,
        base_not_run=base_reason,
        check=check,
        flops=flops,
        traffic_bytes={"ours": 3 * in_bytes, "baseline": 3 * in_bytes + 2 * need},
        targets=[H.Target(ctx.label("ours / floor <= 1.3"), lambda rec: _over_floor(rec), "<=", 1.3)],
        notes=notes,
        extra={
            "sgemm": sg,
            "sgemm_rate_gflops": sg["rate_flops"] / 1e9,
            "floor_s": floor_s,
            "baseline_bytes_needed": need,
        },
        rate_flops=sg["rate_flops"],
        probe=lambda: probes.append(H.measure_sgemm(shape, reps=1, seed=ctx.seed)),
        finalize=lambda rec: _p3_finalize(rec, probes, flops),
        repeats_cap=2 if ctx.mode == "full" else None,
        time_budget_s={"full": 600.0, "quick": 120.0, "smoke": 10.0}[ctx.mode],
    )
    return plan


def _p3_finalize(rec: dict, probes: list, flops: float) -> None:
    rates = [p["rate_flops"] for p in probes]
    best = max(range(len(rates)), key=rates.__getitem__)
    rate = rates[best]
    ex = rec["extra"]
    ex["sgemm_probes_gflops"] = [r / 1e9 for r in rates]
    ex["sgemm_probe_libs"] = [p["best"] for p in probes]
    ex["sgemm"] = probes[best]
    ex["sgemm_rate_gflops"] = rate / 1e9
    ex["floor_s"] = flops / rate
    med = float(np.median(rates))
    ex["floor_s_at_median_rate"] = flops / med
    o = rec["sides"]["ours"].get("median_s")
    if o:
        ex["ours_over_floor_at_median_rate"] = o / (flops / med)
    rec["notes"].insert(
        0,
        f"float32 matmul rate: fastest of {len(rates)} probes in this case = {rate / 1e9:.0f} GFLOP/s "
        f"({probes[best]['best']}, shape {probes[best]['shape']}; all: "
        + ", ".join(f"{r / 1e9:.0f}" for r in rates)
        + f"); floor = 2*m*n_x*n_y / rate = {H.fmt_time(flops / rate)}",
    )
    # predictions follow the same rate
    for side in ("ours", "baseline"):
        r = rec["sides"][side]
        if r.get("predicted_s") is not None and probes:
            r["predicted_s"] = r["predicted_s"] - flops / probes[0]["rate_flops"] + flops / rate


def _over_floor(rec) -> Optional[float]:
    o = rec["sides"]["ours"].get("median_s")
    fl = rec["extra"].get("floor_s")
    if not o or not fl:
        return None
    rec["extra"]["ours_over_floor"] = o / fl
    return o / fl


# ----------------------------------------------------------------------------------------------
# ACC accuracy on offset data
# ----------------------------------------------------------------------------------------------

ACC_SIZES = {"full": (4096, 512), "quick": (4096, 512), "smoke": (1024, 128)}


def build_acc(ctx: Context) -> H.Plan:
    m, p = ACC_SIZES[ctx.mode]
    offset = 1e3
    # signal^2 + noise^2 = 1, so per-feature std ~ 1 and |mean|/std ~ 1e3
    X, Y, _, _ = make_pair(m, p, p, seed=ctx.seed + 4, signal=0.6, noise=0.8, offset=offset)
    Xt, Yt = _torch_views(X, Y)
    ours, ours_fail = ctx.ours("correlation")
    base, base_fail, base_nr = ctx.base("correlation")
    ref_cache: dict = {}

    def check(side, res):
        R = H.to_numpy(res)
        if R.shape != (p, p):
            return {"shape_error": f"got {R.shape}, expected {(p, p)}"}
        if "ref" not in ref_cache:
            ref_cache["ref"] = H.corr64(X, Y)
        return {"max_abs_err": H.max_abs(R.astype(np.float64) - ref_cache["ref"])}

    mx, nx = H.col_stats64(X)
    ratio = float(np.median(np.abs(mx) / (nx / math.sqrt(m - 1))))
    in_bytes = 2 * m * p * F32
    return H.Plan(
        name="ACC",
        title="accuracy on offset data (mean/std ~ 1e3), float32 in, vs float64 two-pass",
        size=f"m={m}, n_x=n_y={p}, mean/std={ratio:.3g}",
        params={"m": m, "n_x": p, "n_y": p, "offset": offset, "median_mean_over_std": ratio},
        ours=(lambda: ours(X, Y)) if ours else None,
        base=(lambda: base(Xt, Yt)) if base else None,
        ours_failed=ours_fail,
        base_failed=base_fail,
        base_not_run=base_nr,
        check=check,
        flops=2.0 * m * p * p,
        traffic_bytes={"ours": 3 * in_bytes + p * p * F32, "baseline": 3 * in_bytes + p * p * F32},
        targets=[H.Target("ours max abs err <= 1e-6", _err_metric("ours"), "<=", 1e-6)],
        notes=["the reference is computed in float64 from the same float32 data; the baseline's error is recorded beside ours"],
    )


# ----------------------------------------------------------------------------------------------
# STRETCH bf16 screening
# ----------------------------------------------------------------------------------------------


def build_stretch(ctx: Context) -> H.Plan:
    m, n = P3_SIZES[ctx.mode]
    has = [f for f in ("amx_bf16", "avx512_bf16") if f in ctx.flags]
    if not has:
        why = "CPU lacks amx_bf16/avx512_bf16 (bf16 screening needs one of them)"
    else:
        why = (f"not implemented yet for topk_correlation (CPU has {', '.join(has)}); the bfloat16 screen "
               "exists for neuron matching: see P5A/P5B")
    return H.Plan(
        name="STRETCH",
        title="bf16 screening + exact float32 re-rank for top-1 correlation (stretch goal)",
        size=f"m={m}, n_x=n_y={n}",
        params={"m": m, "n_x": n, "n_y": n, "dtype": "bfloat16 screen"},
        ours_not_run=why,
        base_not_run=why,
        flops=2.0 * m * n * n,
        notes=[why],
    )


from . import p5 as _p5  # noqa: E402
from . import p6 as _p6  # noqa: E402
from . import p7 as _p7  # noqa: E402
from . import p8 as _p8  # noqa: E402
from . import p9 as _p9  # noqa: E402
from . import p10 as _p10  # noqa: E402

CASES: dict = {
    "P1": build_p1,
    "P2": build_p2,
    "P3": build_p3,
    "ACC": build_acc,
    "STRETCH": build_stretch,
    "P5A": _p5.build("P5A"),
    "P5B": _p5.build("P5B"),
    "P6A": _p6.build("P6A"),
    "P6B": _p6.build("P6B"),
    "P6C": _p6.build("P6C"),
    "P7A": _p7.build("P7A"),
    "P7B": _p7.build("P7B"),
    "P8A": _p8.build("P8A"),
    "P8B": _p8.build("P8B"),
    "P9A": _p9.build("P9A"),
    "P9B": _p9.build("P9B"),
    "P10": _p10.build("P10"),
    "P10R": _p10.build("P10R"),
}

DESCRIPTIONS: dict = {
    "P1": "dense correlation m=4096, 4096x4096 float32; target base/ours >= 0.95",
    "P2": "top-8 correlation m=2048, 16384x16384; target ratio >= 1.3 and ours peak mem <= 5% of baseline's",
    "P3": "top-1 correlation m=1024, 100k x 100k, ours only (baseline needs 40 GB); target ours <= 1.3x sgemm floor",
    "ACC": "accuracy on offset data (mean/std 1e3), m=4096, 512 features; target ours max err <= 1e-6",
    "STRETCH": "bf16 screening + exact re-rank (needs amx_bf16/avx512_bf16; not implemented yet)",
    "P5A": "neuron matching n=10k (m=2048): sparse top-32 route vs dense correlation + scipy; targets <= 2 s, >= 0.9999",
    "P5B": "neuron matching n=100k (m=1024), ours only (dense needs 80 GB); target <= 60 s",
    "P6A": "all layer-pair linear CKA, two 8-layer ReLU MLPs, width 512, n=10k; vs careful torch, minibatch CKA, peers",
    "P6B": "the same with two 8-layer ReLU CNNs, width 4096 (16x16x16), n=10k",
    "P6C": "the same, width 16384 (64x16x16), n=2k: the feature-route state would need ~137 GB",
    "P7A": "maximum subspace match n=512+512, M=100k, planted: Gram pruning vs least-squares pruning; <= 1.5x floor, >= 10x",
    "P7B": "the same over M=1M samples streamed in batches of 100k, ours only (time vs the Gram-pass floor)",
    "P8A": "diffusion map N=20k, D=512, k=32, m=10, end to end: vs pure-PyTorch cdist/topk/lobpcg (+ peers); >= 5x",
    "P8B": "the same at N=100k, ours only; target <= 120 s",
    "P9A": "top-1 agreement matrix, K=1000 models x n=100k examples, 10 classes: bit-sliced popcount vs torch; >= 10x",
    "P9B": "Cohen's kappa error-consistency matrix, same sizes: popcount vs one float32 torch product; >= 10x",
    "P10": "top-8 correlation self-join n=200k, m=1024 through Dask on 2 local workers vs the single-process engine; overhead <= 15%",
    "P10R": "the same for sample-chunked data (m=131k in 8 row chunks, n=4096) by the reduce route; overhead <= 15%",
}
