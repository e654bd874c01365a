"""GPU benchmarks G1-G3 of the CUDA backend, against torch/cuBLAS measured in the same run.

``python -m benchmarks.gpu [--quick|--smoke] [--cases G1,G2,G3] [--repeats N] [--out DIR]``

Timing: CUDA events around each call on the current stream, one warm-up, then ``repeats`` rounds
with ours and the baseline interleaved; medians. The matrix-product ceilings (TF32, FP32, BF16)
are measured first with torch on the same device, and every floor below uses them:

- G1 dense correlation, m=10000, 16000 x 16000: ours per precision against cuBLAS's GEMM of the
  standardised panels at the same precision (3xTF32 against FP32 SGEMM, its accuracy class);
  target >= 80% of the GEMM's throughput.
- G2 top-1, m=1024, 65536 x 65536: ours in BF16 against the BF16 floor (2·m·n²/rate), target <= 2x;
  and against the torch TF32 pipeline (standardise, matmul, max), target >= 2x faster.
- G3 kNN graph, N=100,000, d=512, k=32 (self-join): ours in TF32 against the TF32 floor, target <= 2x;
  the torch baseline (blocked ‖a‖² + ‖b‖² − 2abᵀ then topk) is recorded beside it.

Without a usable CUDA device every case is recorded as "not run" with the reason (this is what the
CI smoke run exercises), and the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from typing import Any, Callable, Optional, Sequence

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SIZES = {
    "G1": {"full": (10_000, 16_000), "quick": (4096, 8192), "smoke": (512, 1024)},
    "G2": {"full": (1024, 65_536), "quick": (1024, 16_384), "smoke": (256, 2048)},
    "G3": {"full": (100_000, 512), "quick": (20_000, 512), "smoke": (2048, 64)},
}
REPEATS = {"full": 5, "quick": 3, "smoke": 1}
G1_PRECISIONS = ("3xtf32", "tf32", "bf16", "float32")


def _unavailable() -> Optional[str]:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        import congruence
    except Exception as e:  # noqa: BLE001
        return f"congruence not importable: {type(e).__name__}: {e}"
    if not congruence.cuda_available():
        return f"congruence.cuda_available() is False: {congruence.info()['cuda'].get('reason')}"
    return None


def cuda_time(fn: Callable[[], Any]) -> float:
    """Seconds of device time for one call, by events on the current stream."""
    import torch

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = fn()
    stop.record()
    stop.synchronize()
    del out
    return start.elapsed_time(stop) / 1e3


def interleaved(fns: dict, repeats: int) -> dict:
    """Median device seconds of each callable, one warm-up each, rounds interleaved."""
    for f in fns.values():
        cuda_time(f)
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(cuda_time(f))
    return {k: {"median_s": statistics.median(v), "times_s": v} for k, v in times.items()}


def matmul_rates(n: int, repeats: int) -> dict:
    """FLOP/s of torch.mm (cuBLAS) at n³ for fp32, tf32 and bf16 on random data."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", generator=g)
    b = torch.randn(n, n, device="cuda", generator=g)
    ab, bb = a.bfloat16(), b.bfloat16()
    prev = torch.backends.cuda.matmul.allow_tf32
    rates = {}
    try:
        for name, x, y, tf32 in (("float32", a, b, False), ("tf32", a, b, True), ("bf16", ab, bb, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            t = interleaved({name: lambda x=x, y=y: torch.mm(x, y)}, max(3, repeats))[name]["median_s"]
            rates[name] = 2.0 * n ** 3 / t
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return rates


def _data(m: int, nx: int, ny: int, seed: int, offset: float = 3.0):
    """(m, nx), (m, ny) float32 on the GPU: shared low-rank signal + noise, offset means (so that
    centring matters), and planted partners so the maxima are meaningful."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    rank = 64
    Z = torch.randn(m, rank, device="cuda", generator=g)
    X = torch.randn(m, nx, device="cuda", generator=g) + Z @ torch.randn(rank, nx, device="cuda", generator=g) / 8
    Y = torch.randn(m, ny, device="cuda", generator=g) + Z @ torch.randn(rank, ny, device="cuda", generator=g) / 8
    planted = min(nx, ny) // 10
    Y[:, :planted] = X[:, :planted] + 0.3 * torch.randn(m, planted, device="cuda", generator=g)
    return X + offset, Y + offset


def _standardise(A, dtype=None):
    import torch

    Z = A - A.mean(dim=0, keepdim=True)
    Z = Z / torch.linalg.vector_norm(Z, dim=0, keepdim=True)
    return Z if dtype is None else Z.to(dtype)


def _corr64_rows(X, Y, rows):
    Zx, Zy = _standardise(X.double()), _standardise(Y.double())
    return Zx[:, rows].T @ Zy


def _max_abs(a) -> float:
    return float(a.abs().max().item()) if a.numel() else 0.0


def case_g1(mode: str, repeats: int, rates: dict, seed: int) -> dict:
    import torch

    import congruence as cg

    m, n = SIZES["G1"][mode]
    X, Y = _data(m, n, n, seed)
    rows = torch.arange(0, n, max(1, n // 64), device="cuda")
    ref = _corr64_rows(X, Y, rows)
    Zx, Zy = _standardise(X), _standardise(Y)
    flops = 2.0 * m * n * n
    out = {"case": "G1", "size": f"m={m}, n_x=n_y={n}", "flops": flops, "precisions": {}}
    prev = torch.backends.cuda.matmul.allow_tf32
    try:
        for p in G1_PRECISIONS:
            tf32 = p == "tf32"
            dt = torch.bfloat16 if p == "bf16" else None
            A, B = (Zx.to(dt), Zy.to(dt)) if dt else (Zx, Zy)

            def gemm(A=A, B=B, tf32=tf32):
                torch.backends.cuda.matmul.allow_tf32 = tf32
                return A.T @ B

            def ours(p=p):
                return cg.correlation(X, Y, precision=p)

            t = interleaved({"ours": ours, "cublas_gemm": gemm}, repeats)
            err = _max_abs(ours()[rows].double() - ref)
            rec = {
                "ours_s": t["ours"]["median_s"],
                "cublas_gemm_s": t["cublas_gemm"]["median_s"],
                "gemm_baseline_precision": "float32 (no 3xTF32 in cuBLAS through torch)" if p == "3xtf32" else p,
                "ours_tflops": flops / t["ours"]["median_s"] / 1e12,
                "fraction_of_cublas": t["cublas_gemm"]["median_s"] / t["ours"]["median_s"],
                "max_abs_err_vs_float64": err,
                "times": t,
            }
            rec["target"] = "fraction_of_cublas >= 0.8"
            rec["status"] = "met" if rec["fraction_of_cublas"] >= 0.8 else "missed"
            out["precisions"][p] = rec
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return out


def case_g2(mode: str, repeats: int, rates: dict, seed: int) -> dict:
    import torch

    import congruence as cg

    m, n = SIZES["G2"][mode]
    X, Y = _data(m, n, n, seed + 1)
    flops = 2.0 * m * n * n
    floor_bf16 = flops / rates["bf16"]
    rows = torch.arange(0, n, max(1, n // 64), device="cuda")
    ref = _corr64_rows(X, Y, rows)
    ref_v, ref_i = ref.max(dim=1)

    def baseline():
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return (_standardise(X).T @ _standardise(Y)).max(dim=1)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False

    fns = {f"ours_{p}": (lambda p=p: cg.max_correlation(X, Y, precision=p)) for p in ("bf16", "tf32", "3xtf32")}
    need = n * n * 4
    free, _ = torch.cuda.mem_get_info()
    base_reason = None if 2.5 * need < free else f"baseline needs {need / 1e9:.1f} GB for the n x n matrix"
    if base_reason is None:
        fns["torch_tf32"] = baseline
    t = interleaved(fns, repeats)
    out = {"case": "G2", "size": f"m={m}, n_x=n_y={n}", "flops": flops, "bf16_floor_s": floor_bf16, "times": t}
    for p in ("bf16", "tf32", "3xtf32"):
        v, i = cg.max_correlation(X, Y, precision=p)
        out[f"{p}_max_abs_err_vs_float64"] = _max_abs(v[rows].double() - ref_v)
        out[f"{p}_index_match_frac"] = float((i[rows] == ref_i).double().mean().item())
    ours = t["ours_bf16"]["median_s"]
    out["ours_bf16_over_floor"] = ours / floor_bf16
    out["targets"] = {"ours_bf16 <= 2x bf16 floor": "met" if ours <= 2 * floor_bf16 else "missed"}
    if base_reason is None:
        out["speedup_vs_torch_tf32"] = t["torch_tf32"]["median_s"] / ours
        out["targets"][">= 2x faster than torch tf32"] = "met" if out["speedup_vs_torch_tf32"] >= 2 else "missed"
    else:
        out["baseline_not_run"] = base_reason
    return out


def case_g3(mode: str, repeats: int, rates: dict, seed: int) -> dict:
    import torch

    import congruence as cg

    N, d = SIZES["G3"][mode]
    k = 32
    g = torch.Generator(device="cuda").manual_seed(seed + 2)
    P = torch.randn(N, d, device="cuda", generator=g) @ torch.randn(d, d, device="cuda", generator=g) / math.sqrt(d)
    flops = 2.0 * N * N * d
    floor_tf32 = flops / rates["tf32"]

    def baseline(block: int = 8192):
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            n2 = (P * P).sum(dim=1)
            vals, idx = [], []
            for s in range(0, N, block):
                d2 = n2[s:s + block, None] + n2[None, :] - 2.0 * (P[s:s + block] @ P.T)
                d2[torch.arange(d2.shape[0], device="cuda"), torch.arange(s, s + d2.shape[0], device="cuda")] = math.inf
                v, i = d2.topk(k, dim=1, largest=False)
                vals.append(v)
                idx.append(i)
            return torch.cat(vals), torch.cat(idx)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False

    t = interleaved({"ours_tf32": lambda: cg.knn(P, k=k, precision="tf32"), "torch_tf32": baseline}, repeats)
    q = torch.arange(0, N, max(1, N // 64), device="cuda")
    P64 = P.double()  # float64 expansion: exact enough at this scale, without an N x N x d tensor
    n64 = (P64 * P64).sum(dim=1)
    d2 = n64[q, None] + n64[None, :] - 2.0 * (P64[q] @ P64.T)
    d2[torch.arange(len(q), device="cuda"), q] = math.inf
    ref_i = d2.topk(k, dim=1, largest=False).indices
    _, ours_i = cg.knn(P, k=k, precision="tf32")
    recall = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(ours_i[q], ref_i)]
    ours = t["ours_tf32"]["median_s"]
    return {
        "case": "G3",
        "size": f"N={N}, d={d}, k={k}",
        "flops": flops,
        "tf32_floor_s": floor_tf32,
        "times": t,
        "ours_over_floor": ours / floor_tf32,
        "speedup_vs_torch_tf32": t["torch_tf32"]["median_s"] / ours,
        "recall_at_k_vs_float64": statistics.mean(recall),
        "targets": {"ours_tf32 <= 2x tf32 floor": "met" if ours <= 2 * floor_tf32 else "missed"},
    }


CASES = {"G1": case_g1, "G2": case_g2, "G3": case_g3}


def _device_description() -> dict:
    import torch

    p = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": p.name,
        "compute_capability": [p.major, p.minor],
        "multiprocessors": p.multi_processor_count,
        "total_memory": p.total_memory,
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
    }


def render_markdown(report: dict) -> str:
    lines = [f"# GPU benchmarks ({report['mode']})", "", f"device: {report.get('device', {}).get('name', 'none')}", ""]
    if report.get("not_run"):
        lines.append(f"not run: {report['not_run']}")
        return "\n".join(lines) + "\n"
    r = report["matmul_rates_tflops"]
    lines.append("cuBLAS rates (torch.mm, measured in this run): " + ", ".join(f"{k} {v:.0f} TFLOP/s" for k, v in r.items()))
    lines += ["", "| case | precision | ours | reference | ratio | target | error |", "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        if "error" in c:
            lines.append(f"| {c['case']} | | FAILED: {c['error']} | | | | |")
        elif c["case"] == "G1":
            for p, rec in c["precisions"].items():
                lines.append(
                    f"| G1 {c['size']} | {p} | {rec['ours_s'] * 1e3:.2f} ms | cuBLAS {rec['gemm_baseline_precision']} "
                    f"{rec['cublas_gemm_s'] * 1e3:.2f} ms | {rec['fraction_of_cublas']:.2f} of cuBLAS | >= 0.8: "
                    f"{rec['status']} | {rec['max_abs_err_vs_float64']:.1e} |"
                )
        elif c["case"] == "G2":
            t = c["times"]
            base = f"torch tf32 {t['torch_tf32']['median_s'] * 1e3:.1f} ms" if "torch_tf32" in t else c.get("baseline_not_run")
            lines.append(
                f"| G2 {c['size']} | bf16 | {t['ours_bf16']['median_s'] * 1e3:.2f} ms | bf16 floor "
                f"{c['bf16_floor_s'] * 1e3:.2f} ms; {base} | {c['ours_bf16_over_floor']:.2f}x floor"
                + (f", {c['speedup_vs_torch_tf32']:.2f}x faster" if "speedup_vs_torch_tf32" in c else "")
                + f" | {'; '.join(f'{k}: {v}' for k, v in c['targets'].items())} | {c['bf16_max_abs_err_vs_float64']:.1e} |"
            )
        elif c["case"] == "G3":
            t = c["times"]
            lines.append(
                f"| G3 {c['size']} | tf32 | {t['ours_tf32']['median_s'] * 1e3:.2f} ms | tf32 floor "
                f"{c['tf32_floor_s'] * 1e3:.2f} ms; torch tf32 {t['torch_tf32']['median_s'] * 1e3:.1f} ms | "
                f"{c['ours_over_floor']:.2f}x floor | {'; '.join(f'{k}: {v}' for k, v in c['targets'].items())} | "
                f"recall {c['recall_at_k_vs_float64']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true")
    g.add_argument("--smoke", action="store_true")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(None if argv is None else list(argv))
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    wanted = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in wanted if c not in CASES]
    if bad:
        ap.error(f"unknown case(s) {bad}; choose from {list(CASES)}")
    repeats = args.repeats or REPEATS[mode]
    report: dict = {"mode": mode, "repeats": repeats, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cases": []}
    why = _unavailable()
    if why:
        report["not_run"] = why
        print(f"GPU benchmarks not run: {why}")
    else:
        import torch

        report["device"] = _device_description()
        rates = matmul_rates(1024 if mode == "smoke" else 8192, repeats)
        report["matmul_rates_tflops"] = {k: v / 1e12 for k, v in rates.items()}
        print(f"device {report['device']['name']}: " + ", ".join(f"{k} {v / 1e12:.0f} TFLOP/s" for k, v in rates.items()))
        for name in wanted:
            t0 = time.perf_counter()
            try:
                rec = CASES[name](mode, repeats, rates, args.seed)
            except Exception as e:  # noqa: BLE001  (record and go on with the other cases)
                import traceback

                rec = {"case": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}
            rec["wall_s"] = time.perf_counter() - t0
            report["cases"].append(rec)
            torch.cuda.empty_cache()
            print(json.dumps({k: v for k, v in rec.items() if k not in ("times", "traceback")}, default=str)[:2000])
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"gpu-{mode}")
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2, default=str)
    md = render_markdown(report)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    return 1 if any("error" in c for c in report["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
