"""P6: all layer-pair linear CKA of two 8-layer models (issue 4 §7).

Three sizes, one case each: P6A widths 512 and P6B widths 4096 over 10k samples, P6C widths
16384 over 2k samples. P6A uses the plain 8-layer ReLU MLP on which the peer packages fail;
P6B/P6C use 8-layer ReLU CNNs whose flattened outputs (channels x 16 x 16) have those widths, so
that the forward passes (the same work for every side, and not part of any floor) stay a small part
of the time.

Sides, all on the same models and the same batches, in one process:

* ours: ``congruence.compare(model_a, model_b, batches)`` with its default route="auto", which
  picks the streamed feature-space state or the sample-space Gram path by cost and memory;
* baseline: ``baselines.compare_linear_cka`` — the careful exact pure-PyTorch pipeline (cache every
  layer, centre once, per-layer Grams once in the cheaper space, one product per pair);
* recorded once each in the finalize step (not interleaved): ours with route="features" (the
  one-pass, never-caching route of the ≤ 1.2x-floor target), the forward passes alone, the
  minibatch CKA estimator (``baselines.minibatch_cka``) with its deviation from the exact values,
  and the peers torch-cka and ckatorch when installed (whether they run, their time, deviation).

Floor: the float32 products exact linear CKA needs on the feature route, per-layer Grams by
symmetric rank-k updates (n·p²/2 multiply-adds) plus one n·p_a·p_b product per layer pair, at the
fastest float32 matmul rate probed in this case. Ours on that route is compared to the floor after
subtracting the measured forward-pass time.
"""

from __future__ import annotations

import math
import traceback
from typing import Any, Optional

import numpy as np

from . import harness as H

# (kind, width, samples, batch) per mode; kind "mlp" (width = hidden size) or "cnn" (width =
# channels x 16 x 16).
P6_SIZES = {
    "P6A": {"full": ("mlp", 512, 10_000, 1000), "quick": ("mlp", 512, 4000, 1000), "smoke": ("mlp", 32, 256, 64)},
    "P6B": {"full": ("cnn", 4096, 10_000, 1000), "quick": ("cnn", 2048, 4000, 1000), "smoke": ("cnn", 256, 256, 64)},
    "P6C": {"full": ("cnn", 16384, 2000, 1000), "quick": ("cnn", 8192, 1000, 500), "smoke": ("cnn", 1024, 128, 64)},
}
N_LAYERS = 8
IN_FEATURES = 64
SIDE = 16  # CNN feature maps are SIDE x SIDE


def make_model(kind: str, width: int, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    if kind == "mlp":
        d = IN_FEATURES
        for _ in range(N_LAYERS):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
    else:
        channels = width // (SIDE * SIDE)
        c = 3
        for _ in range(N_LAYERS):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.ReLU()]
            c = channels
    model = nn.Sequential(*layers).float().eval()
    if kind == "cnn":  # He initialisation keeps every layer of the deep conv stack alive; the MLP
        for m in model.modules():  # keeps torch's default initialisation (the plain MLP of the issue)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model


def relu_names(model) -> list[str]:
    from torch import nn

    return [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]


def make_batches(kind: str, n: int, batch: int, seed: int) -> list:
    import torch

    g = torch.Generator().manual_seed(seed)
    shape = (n, IN_FEATURES) if kind == "mlp" else (n, 3, SIDE, SIDE)
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    return list(x.split(batch))


def floor_macs(n: int, widths_a: list, widths_b: list) -> float:
    grams = sum(n * p * p / 2 for p in widths_a + widths_b)
    cross = sum(n * p * q for p in widths_a for q in widths_b)
    return grams + cross


def _cka64(x: np.ndarray, y: np.ndarray) -> float:
    """Float64 linear CKA of two float32 activation matrices, by the cheaper space."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean(0)
    y -= y.mean(0)
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if n * (p * p + q * q + p * q) <= n * n * (p + q):
        num = np.sum((x.T @ y) ** 2)
        return float(num / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))
    K, L = x @ x.T, y @ y.T
    return float(np.vdot(K, L) / (np.linalg.norm(K) * np.linalg.norm(L)))


def _matrix(res: Any) -> np.ndarray:
    if hasattr(res, "values") and isinstance(getattr(res, "values"), dict):  # a Comparison
        return np.asarray(res["linear_cka"], dtype=np.float64)
    return H.to_numpy(res).astype(np.float64)


def _timed(fn, interval: float) -> dict:
    """One call through the harness's timer and memory sampler; a failure is recorded, not raised."""
    try:
        r, dt, extra = H._call(fn, interval)
    except Exception as e:  # noqa: BLE001
        return {"status": "failed", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}
    return {"status": "ok", "time_s": dt, "peak_extra_bytes": extra, "result": r}


def _deviation(m: Optional[np.ndarray], exact: Optional[np.ndarray]) -> dict:
    if m is None or exact is None or m.shape != exact.shape:
        return {}
    d = np.abs(m - exact)
    finite = np.isfinite(m)
    return {"max_abs_dev": float(np.nanmax(d)) if finite.any() else None,
            "mean_abs_dev": float(np.nanmean(d)) if finite.any() else None,
            "nan_entries": int((~finite).sum())}


def _peer_torch_cka(A, B, layers, batches):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from torch_cka import CKA

    loader = DataLoader(TensorDataset(torch.cat(batches)), batch_size=batches[0].shape[0], shuffle=False)
    c = CKA(A, B, model1_name="a", model2_name="b", model1_layers=layers, model2_layers=layers, device="cpu")
    c.compare(loader)
    return c.export()["CKA"]


def _peer_ckatorch(A, B, layers, batches):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ckatorch import CKA

    loader = DataLoader(TensorDataset(torch.cat(batches)), batch_size=batches[0].shape[0], shuffle=False)
    return CKA(A, B, layers=layers, second_layers=layers, first_name="a", second_name="b")(loader, epochs=1)


def _peer(name: str):
    try:
        __import__({"torch-cka": "torch_cka", "ckatorch": "ckatorch"}[name])
    except Exception as e:  # noqa: BLE001
        return None, f"not installed ({type(e).__name__}: {e}); pip install {name}"
    return {"torch-cka": _peer_torch_cka, "ckatorch": _peer_ckatorch}[name], None


def build(variant: str):
    def builder(ctx) -> H.Plan:
        return _build(ctx, variant)

    return builder


def _build(ctx, variant: str) -> H.Plan:
    kind, width, n, batch = P6_SIZES[variant][ctx.mode]
    shape = (4096, 1024, 4096) if ctx.mode != "smoke" else (1024, 256, 1024)
    probes = [H.measure_sgemm(shape, reps=3 if ctx.mode != "smoke" else 2, seed=ctx.seed)]
    widths = [width] * N_LAYERS
    macs = floor_macs(n, widths, widths)
    title = (f"all layer-pair linear CKA, two 8-layer ReLU {kind.upper()}s: congruence.compare vs "
             "baselines.compare_linear_cka (careful exact torch)")
    size = f"widths {width}, n={n}, batches of {batch}, {N_LAYERS}x{N_LAYERS} pairs"
    params = {"model": kind, "width": width, "n_samples": n, "batch": batch, "layers": N_LAYERS, "dtype": "float32"}
    try:
        import torch
    except ImportError:
        why = "torch is not installed (the models are torch modules)"
        return H.Plan(name=variant, title=title, size=size, params=params, ours_not_run=why, base_not_run=why)
    torch_threads = ctx.threads
    A, B = make_model(kind, width, ctx.seed), make_model(kind, width, ctx.seed + 1)
    layers = relu_names(A)
    data = make_batches(kind, n, batch, ctx.seed + 6)
    compare, ours_fail = ctx.ours("compare")
    base_fn, base_fail, base_nr = ctx.base("compare_linear_cka")
    mb_fn, mb_fail, _ = ctx.base("minibatch_cka")
    cache: dict = {}

    def ours():
        return compare(A, B, data, layers_a=layers, layers_b=layers, measures="linear_cka")

    def base():
        return base_fn(A, B, data, layers, layers)

    ref_pairs = [(0, 0), (3, 5), (7, 7)] if variant != "P6B" or ctx.mode != "full" else [(3, 5), (7, 7)]

    def reference() -> dict:
        if "ref" not in cache:
            from congruence import baselines as bl

            ref = {}
            for i, j in ref_pairs:
                xa = torch.cat(bl.cache_activations(A, [layers[i]], data)).numpy()
                xb = torch.cat(bl.cache_activations(B, [layers[j]], data)).numpy()
                ref[(i, j)] = _cka64(xa, xb)
                del xa, xb
            cache["ref"] = ref
        return cache["ref"]

    def check(side, res):
        M = _matrix(res)
        if M.shape != (N_LAYERS, N_LAYERS):
            return {"shape_error": f"got {M.shape}"}
        ref = reference()
        out = {"max_abs_err": H.max_abs(np.array([M[i, j] - v for (i, j), v in ref.items()])),
               "pairs_checked": len(ref), "nan_entries": int(np.isnan(M).sum())}
        cache[side] = M
        if side == "ours" and hasattr(res, "info"):
            out["route"] = res.info.get("route")
            out["route_reason"] = res.info.get("route_reason")
        if "ours" in cache and "baseline" in cache:
            out["ours_vs_baseline_max_abs_diff"] = H.max_abs(cache["ours"] - cache["baseline"])
        return out

    def finalize(rec: dict) -> None:
        _finalize(rec, ctx, variant, A, B, layers, data, compare, mb_fn, mb_fail, cache, probes, macs, n, widths,
                  torch_threads)

    need_features = 8 * (sum(p * p for p in widths) * 2 + sum(p * q for p in widths for q in widths))
    return H.Plan(
        name=variant,
        title=title,
        size=size,
        params=params,
        ours=ours if compare else None,
        base=base if base_fn else None,
        ours_failed=ours_fail,
        base_failed=base_fail,
        base_not_run=base_nr,
        check=check,
        flops=2.0 * macs,
        traffic_bytes={},
        targets=[
            H.Target(ctx.label("one-pass route: (ours - forward) / floor <= 1.2"),
                     lambda rec: rec["extra"].get("features_route_over_floor"), "<=", 1.2),
            H.Target(ctx.label("baseline / ours >= 1.0"), lambda rec: rec.get("ratio"), ">=", 1.0),
            H.Target(ctx.label("ours peak mem / baseline <= 0.25"), _mem_fraction, "<=", 0.25),
        ],
        notes=[f"feature-route state: {H.fmt_bytes(need_features)} of float64 (per-layer Grams and all "
               f"{N_LAYERS * N_LAYERS} cross blocks)"],
        extra={"floor_macs": macs, "layers": layers},
        rate_flops=probes[0]["rate_flops"],
        probe=lambda: probes.append(H.measure_sgemm(shape, reps=1, seed=ctx.seed)),
        finalize=finalize,
        repeats_cap={"full": 3, "quick": 3, "smoke": 1}[ctx.mode] if variant == "P6A" else 1,
        time_budget_s={"full": 900.0, "quick": 240.0, "smoke": 20.0}[ctx.mode],
    )


def _mem_fraction(rec) -> Optional[float]:
    o = rec["sides"]["ours"].get("peak_extra_max_bytes")
    b = rec["sides"]["baseline"].get("peak_extra_max_bytes")
    return o / b if (o is not None and b) else None


def _finalize(rec, ctx, variant, A, B, layers, data, compare, mb_fn, mb_fail, cache, probes, macs, n, widths,
              threads) -> None:
    import torch

    ex = rec["extra"]
    interval = ctx.sampler_interval
    rates = [p["rate_flops"] for p in probes]
    rate = max(rates)
    ex["sgemm_probes_gflops"] = [r / 1e9 for r in rates]
    ex["sgemm_rate_gflops"] = rate / 1e9
    ex["floor_s"] = 2.0 * macs / rate
    exact = cache.get("ours")

    # the forward passes alone (same for every side)
    def forward():
        with torch.no_grad():
            for x in data:
                A(x)
                B(x)

    fw = _timed(forward, interval)
    ex["forward_s"] = fw.get("time_s")

    # ours on the one-pass feature route, when its state fits in RAM
    need = 8 * (2 * sum(p * p for p in widths) + sum(p * q for p in widths for q in widths))
    avail = H.mem_available_bytes() or 0
    side: dict
    if compare is None:
        side = {"status": "not run", "reason": "congruence.compare unavailable"}
    elif need > 0.8 * avail:
        side = {"status": "not run", "reason": f"the feature-route state needs {H.fmt_bytes(need)} > 80% of the "
                f"available RAM ({H.fmt_bytes(avail)}): this size is what the sample-space route is for"}
    else:
        side = _timed(lambda: compare(A, B, data, layers_a=layers, layers_b=layers, measures="linear_cka",
                                      route="features", memory_limit=int(0.8 * avail)), interval)
    res = side.pop("result", None)
    if res is not None:
        side.update(_deviation(_matrix(res), exact))
        side["route"] = res.info.get("route")
        if ex.get("forward_s") is not None:
            side["time_minus_forward_s"] = side["time_s"] - ex["forward_s"]
            ex["features_route_over_floor"] = side["time_minus_forward_s"] / ex["floor_s"]
    ex["ours_features_route"] = side
    # When the default route already is the feature route, its interleaved median (several rounds)
    # measures the same computation better than this one extra call.
    main = rec["sides"]["ours"]
    if (main.get("errors") or {}).get("route") == "streamed" and main.get("median_s") and ex.get("forward_s"):
        ex["features_route_over_floor"] = (main["median_s"] - ex["forward_s"]) / ex["floor_s"]
        ex["features_route_over_floor_source"] = f"ours' median of {len(main.get('times_s') or [])} rounds"
    elif "features_route_over_floor" in ex:
        ex["features_route_over_floor_source"] = "one call with route='features'"

    # ours' route-auto time against the floor of its own route, for the record
    o = rec["sides"]["ours"].get("median_s")
    if o and ex.get("forward_s") is not None:
        ex["ours_minus_forward_s"] = o - ex["forward_s"]

    # the minibatch estimator
    if mb_fn is None:
        ex["minibatch_cka"] = {"status": "failed" if mb_fail else "not run", "reason": mb_fail or "torch missing"}
    else:
        mb = _timed(lambda: mb_fn(A, B, data, layers, layers), interval)
        r = mb.pop("result", None)
        if r is not None:
            mb.update(_deviation(_matrix(r), exact))
        ex["minibatch_cka"] = mb

    # the peers' own packages
    peers = {}
    for name in ("torch-cka", "ckatorch"):
        fn, why = _peer(name)
        if fn is None:
            peers[name] = {"status": "not run", "reason": why}
            continue
        pr = _timed(lambda: fn(A, B, layers, data), interval)
        r = pr.pop("result", None)
        if r is not None:
            pr.update(_deviation(_matrix(r), exact))
        pr.pop("traceback", None)
        peers[name] = pr
    ex["peers"] = peers
    torch.set_num_threads(threads)

    notes = rec["notes"]
    notes.insert(0, f"float32 matmul rate: fastest of {len(rates)} probes = {rate / 1e9:.0f} GFLOP/s; feature-route "
                 f"floor = 2 x {macs:.3g} multiply-adds / rate = {H.fmt_time(ex['floor_s'])}; forward passes alone "
                 f"{H.fmt_time(ex.get('forward_s'))}")
    fr = ex["ours_features_route"]
    if fr.get("status") == "ok":
        notes.append(f"ours, route='features' (one pass, no activations cached): {H.fmt_time(fr['time_s'])}, peak "
                     f"+{H.fmt_bytes(fr.get('peak_extra_bytes'))}; minus the forward passes "
                     f"{ex['features_route_over_floor']:.2f}x the floor (from {ex['features_route_over_floor_source']})")
    else:
        notes.append(f"ours, route='features': {fr.get('status')} ({fr.get('reason')})")
    mb = ex["minibatch_cka"]
    if mb.get("status") == "ok":
        notes.append(f"minibatch CKA estimator (batches of {data[0].shape[0]}): {H.fmt_time(mb['time_s'])}, peak "
                     f"+{H.fmt_bytes(mb.get('peak_extra_bytes'))}, max |estimate - exact| = "
                     f"{mb.get('max_abs_dev', float('nan')):.3g} (mean {mb.get('mean_abs_dev', float('nan')):.3g})")
    for name, pr in peers.items():
        if pr.get("status") == "ok":
            notes.append(f"peer {name}: ran in {H.fmt_time(pr['time_s'])}, max |theirs - exact| = "
                         f"{pr.get('max_abs_dev')}, NaN entries {pr.get('nan_entries')}")
        else:
            notes.append(f"peer {name}: {pr.get('status')}: {pr.get('reason')}")
    if not math.isfinite(ex["floor_s"]):
        notes.append("floor unavailable")
