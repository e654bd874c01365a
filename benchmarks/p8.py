"""P8: diffusion maps end to end, N points near a 3-D manifold in 512 dimensions (issue 7).

* P8A — N = 20,000 points, D = 512, k = 32 neighbours, m = 10 eigenvectors, ε by the median
  rule, α = 1: ours ``congruence.diffusion.DiffusionMap(n_components=10, k=32, epsilon="median",
  alpha=1.0).fit(X)`` against ``baselines.diffusion_map_torch`` (the same algorithm in plain
  PyTorch: blocked ``torch.cdist`` + ``torch.topk`` kNN, sparse COO/CSR kernel, ``torch.lobpcg``),
  interleaved by the harness on the same float64 data. Agreement recorded: eigenvalues' max
  relative difference, min |corr| of ψ_1..ψ_m, min canonical correlation of span(ψ_1..ψ_m).
  Target: baseline / ours ≥ 5.
* P8B — N = 100,000, same D, k, m: ours only; target ≤ 120 s.

Data (float64, seeded): Z uniform on the box [0,1] x [0,0.7] x [0,0.45], features cos(jπZ_i),
j = 1..4, i = 1..3 (12 features, a smooth embedding of the box), mapped by a random 12 x D
Gaussian matrix, plus Gaussian noise of 1% of the clean coordinates' RMS per coordinate. The box
is anisotropic (not the unit cube) so that the leading eigenvalues are not nearly degenerate and
the eigenvectors of two implementations can be compared one by one.

Recorded once (finalize): a time breakdown of one instrumented ``fit`` of ours (kNN, kernel
assembly, normalisations, eigensolver) and the baseline's own stage times and LOBPCG record
(iterations, converged pairs); the predicted time of ours: the kNN screen's N²·(D + 2) FLOPs (the
upper triangle of one product of the lifted (D + 2)-wide panels) at the float32 matrix-product
rate measured in this case (ours screens candidates in float32 and
rechecks them in float64; the float64 rate is recorded beside it).

Peers (full and quick modes; skipped in smoke), each in a subprocess
(``benchmarks/p8_peers.py``) under the interpreter named by the environment variable
``CONGRUENCE_PEER_PYTHON`` (default: this interpreter), since datafold pins an older
numpy/scipy/scikit-learn than the main environment: datafold (``dynfold.DiffusionMaps``) and
pyDiffMap (``DiffusionMap.from_sklearn``), both with scikit-learn's brute-force kNN, the same k
and the same ε that ours found. Kernel conventions (read from their sources, datafold 2.0.2 and
pyDiffMap 0.2.0.1): datafold's GaussianKernel is exp(−d²/(2ε)) as ours, ε passed unchanged;
pyDiffMap's is exp(−d²/(4ε')), so ε' = ε/2; both count the point itself among the k neighbours,
so they get k + 1. Remaining differences, by design of the packages: datafold does not symmetrise
a kNN kernel (its Markov matrix is built from the non-symmetric kNN kernel), pyDiffMap symmetrises
by max(K, Kᵀ) where ours averages — so pyDiffMap is also compared with ours at
``symmetrize="max"`` (one extra fit of ours), and datafold with a scipy reference of its
construction (unsymmetrised kNN kernel, α-normalised, row-normalised, ARPACK ``eigs``) on the kNN
pairs of ours' instrumented fit. Each peer's fit time is the median of its fits (no
warm-up), a peer subprocess that runs past 10 minutes is stopped and recorded as timed out, and a
peer that cannot be imported is recorded as not installed, with the import error.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Optional

import numpy as np

from . import harness as H

P8_SIZES = {  # (N points, D dims) per mode
    "P8A": {"full": (20_000, 512), "quick": (5000, 512), "smoke": (1000, 64)},
    "P8B": {"full": (100_000, 512), "quick": (20_000, 512), "smoke": (2000, 64)},
}
K = 32
M = 10
ALPHA = 1.0
BOX = (1.0, 0.7, 0.45)
HARMONICS = 4
NOISE = 0.01
PEERS = ("datafold", "pydiffmap")
PEER_TIMEOUT_S = 600.0
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "p8_peers.py")


def manifold_points(N: int, D: int, seed: int, row_chunk: int = 16384) -> np.ndarray:
    """X (N, D) float64: cos(jπZ) features (j = 1..4) of Z uniform on BOX, through a random 12 x D
    map, plus NOISE x (RMS of the clean coordinates) Gaussian noise; generated in row chunks."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((3 * HARMONICS, D)) / np.sqrt(3 * HARMONICS)
    X = np.empty((N, D))
    for r0 in range(0, N, row_chunk):
        r1 = min(N, r0 + row_chunk)
        Z = rng.random((r1 - r0, 3)) * np.asarray(BOX)
        F = np.concatenate([np.cos(j * np.pi * Z) for j in range(1, HARMONICS + 1)], axis=1)
        np.matmul(F, W, out=X[r0:r1])
    rms = float(np.sqrt(np.mean(X * X)))
    for r0 in range(0, N, row_chunk):
        r1 = min(N, r0 + row_chunk)
        X[r0:r1] += (NOISE * rms) * rng.standard_normal((r1 - r0, D))
    return X


def measure_gemm(shape, dtype, reps: int = 3, seed: int = 0) -> dict:
    """Matrix-product rate in ``dtype`` on the (M,K)@(K,N) shape: numpy and torch.mm, interleaved,
    ``reps`` timed calls each after a warm-up; the rate is the fastest median."""
    Mr, Kd, Nc = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((Mr, Kd)).astype(dtype)
    b = rng.standard_normal((Kd, Nc)).astype(dtype)
    c = np.empty((Mr, Nc), dtype)
    fns = {"numpy": lambda: np.matmul(a, b, out=c)}
    try:
        import torch

        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        fns["torch"] = lambda: torch.mm(ta, tb, out=tc)
    except Exception:  # noqa: BLE001
        pass
    times: dict = {n: [] for n in fns}
    for f in fns.values():
        f()
    for _ in range(reps):
        for n, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[n].append(time.perf_counter() - t0)
    gflops = {n: 2.0 * Mr * Kd * Nc / statistics.median(v) / 1e9 for n, v in times.items()}
    best = max(gflops, key=gflops.get)
    return {"shape": list(shape), "dtype": np.dtype(dtype).name, "gflops": gflops, "best": best,
            "rate_flops": gflops[best] * 1e9}


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return abs(float(a @ b)) / den if den > 0 else float("nan")


def agreement(w_a, V_a, w_b, V_b) -> dict:
    """Eigenvalue and eigenvector agreement of two solutions, ψ_0 left out of the vector figures.
    ``w_*`` hold λ_0..λ_m (or λ_1..λ_m when ``len(w) == V.shape[1]`` and V has no ψ_0)."""
    w_a, w_b = np.asarray(w_a, float), np.asarray(w_b, float)
    n = min(len(w_a), len(w_b))
    rel = np.abs(w_a[:n] - w_b[:n]) / np.abs(w_a[:n])
    out = {"eigenvalues_max_rel_diff": float(rel.max()) if n else None}
    if V_a is not None and V_b is not None:
        nv = min(V_a.shape[1], V_b.shape[1])
        corr = [_abs_corr(V_a[:, i], V_b[:, i]) for i in range(nv)]
        out["psi_abs_corr"] = corr
        out["psi_min_abs_corr"] = float(min(corr)) if corr else None
        qa, _ = np.linalg.qr(V_a[:, :nv] - V_a[:, :nv].mean(0))
        qb, _ = np.linalg.qr(V_b[:, :nv] - V_b[:, :nv].mean(0))
        out["subspace_min_canonical_corr"] = float(np.linalg.svd(qa.T @ qb, compute_uv=False).min())
    return out


def _diffusion_map_class(ctx):
    """(DiffusionMap class, failure reason)."""
    if ctx.cg is None:
        return None, f"congruence not importable: {ctx.cg_error}"
    try:
        import importlib

        mod = importlib.import_module(ctx.cg.__name__ + ".diffusion")
        return mod.DiffusionMap, None
    except Exception as e:  # noqa: BLE001
        return None, f"congruence.diffusion.DiffusionMap unavailable: {type(e).__name__}: {e}"


def ours_breakdown(DM, X: np.ndarray, threads: int, keep: Optional[dict] = None, **kw) -> dict:
    """One ``fit`` with the kernel module's ``_neighbours`` (the kNN) and ``assemble_kernel`` and
    the estimator module's ``top_eigenpairs`` wrapped in timers; normalisations = the rest. The
    kNN's output (rows, cols, d², d²_k) is put in ``keep["neighbours"]`` when ``keep`` is given."""
    import importlib

    mod_dm = importlib.import_module(DM.__module__)
    mod_k = importlib.import_module(DM.__module__.rsplit(".", 1)[0] + ".kernel")
    times: dict = {}
    wrapped = [(mod_k, "_neighbours", "knn_s"), (mod_k, "assemble_kernel", "kernel_assembly_s"),
               (mod_dm, "top_eigenpairs", "eigensolver_s")]
    originals = []

    def timer(orig, key):
        def timed(*a, **k2):
            t = time.perf_counter()
            r = orig(*a, **k2)
            times[key] = times.get(key, 0.0) + time.perf_counter() - t
            if keep is not None and key == "knn_s":
                keep["neighbours"] = r
            return r

        return timed

    try:
        for mod, name, key in wrapped:
            orig = getattr(mod, name)
            originals.append((mod, name, orig))
            setattr(mod, name, timer(orig, key))
        t0 = time.perf_counter()
        DM(n_components=M, k=K, epsilon="median", alpha=ALPHA, num_threads=threads, **kw).fit(X)
        total = time.perf_counter() - t0
    finally:
        for mod, name, orig in originals:
            setattr(mod, name, orig)
    times["total_s"] = total
    times["normalisations_and_rest_s"] = total - sum(times.get(k, 0.0) for _, _, k in wrapped)
    return times


def unsymmetrised_reference(neighbours, N: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """λ_1..λ_m and ψ_1..ψ_m of datafold's construction on ours' kNN pairs: the kNN kernel NOT
    symmetrised, K^(α)_ij = K_ij / (q_i q_j)^α with q its row sums, P = D⁻¹K^(α), right eigenvectors
    of P by ARPACK (scipy; a reference, not timed)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigs

    rows, cols, d2 = neighbours[0], neighbours[1], neighbours[2]
    Kn = sp.csr_matrix((np.exp(-d2 / (2.0 * eps)), (rows, cols)), shape=(N, N))
    q = np.asarray(Kn.sum(axis=1)).ravel() ** -ALPHA
    Ka = sp.diags(q) @ Kn @ sp.diags(q)
    P = (sp.diags(1.0 / np.asarray(Ka.sum(axis=1)).ravel()) @ Ka).tocsr()
    w, V = eigs(P, k=M + 1, which="LR", v0=np.random.default_rng(0).standard_normal(N), tol=1e-12)
    order = np.argsort(w.real)[::-1]
    w, V = w.real[order], V.real[:, order]
    return w[1:], V[:, 1:]


def run_peer(name: str, X_path: str, eps: float, threads: int, repeats: int, evecs_path: str) -> dict:
    """One peer in a subprocess under CONGRUENCE_PEER_PYTHON; never raises."""
    py = os.environ.get("CONGRUENCE_PEER_PYTHON") or sys.executable
    cmd = [py, PEER_SCRIPT, "--peer", name, "--data", X_path, "--epsilon", repr(float(eps)), "--k", str(K),
           "--m", str(M), "--alpha", str(ALPHA), "--repeats", str(repeats), "--budget", str(PEER_TIMEOUT_S / 2),
           "--threads", str(threads), "--evecs-out", evecs_path]
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[v] = str(threads)
    t0 = time.perf_counter()
    try:  # its own session, so that a timeout stops the peer's worker processes too
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    except Exception as e:  # noqa: BLE001
        return {"status": "failed", "reason": f"could not start {py}: {type(e).__name__}: {e}", "python": py}
    try:
        stdout, stderr = p.communicate(timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            p.kill()
        p.communicate()
        return {"status": "timed out", "reason": f"no result within {PEER_TIMEOUT_S:.0f} s (subprocess stopped)",
                "python": py, "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"status": "failed", "python": py, "wall_s": wall, "returncode": p.returncode,
                "reason": f"no JSON from the peer script (exit {p.returncode}): {stderr.strip()[-600:]}"}
    out = json.loads(lines[-1])
    out["wall_s"] = wall
    out.pop("traceback", None)
    return out


def build(variant: str):
    def builder(ctx) -> H.Plan:
        return _build(ctx, variant)

    return builder


def _build(ctx, variant: str) -> H.Plan:
    N, D = P8_SIZES[variant][ctx.mode]
    DM, ours_fail = _diffusion_map_class(ctx)
    if variant == "P8A":
        base, base_fail, base_nr = ctx.base("diffusion_map_torch")
    else:
        base, base_fail = None, None
        na = P8_SIZES["P8A"][ctx.mode][0]
        base_nr = (f"ours only: P8A measures the baseline; at N={N} its O(N^2) kNN alone would take about "
                   f"{(N / na) ** 2:.0f}x the one at P8A's N={na}")
    X = manifold_points(N, D, seed=ctx.seed + 80)
    gemm_shape = (4096, D, 4096) if ctx.mode != "smoke" else (1024, D, 1024)
    reps = 2 if ctx.mode == "smoke" else 3
    rate64 = measure_gemm(gemm_shape, np.float64, reps=reps, seed=ctx.seed)
    rate32 = measure_gemm(gemm_shape, np.float32, reps=reps, seed=ctx.seed)
    flops = 1.0 * N * N * (D + 2)  # the kNN screen's upper-triangle product of the lifted (D + 2)-wide panels
    cache: dict = {}
    base_info: dict = {}
    Xt = None
    if base is not None:
        import torch

        Xt = torch.from_numpy(X)  # zero-copy float64 view: the baseline's kNN runs in float64 as ours

    def ours():
        return DM(n_components=M, k=K, epsilon="median", alpha=ALPHA, num_threads=ctx.threads).fit(X)

    def baseline():
        base_info.clear()
        return base(Xt, M, k=K, epsilon="median", alpha=ALPHA, seed=0, info=base_info)

    def check(side, res):
        if side == "ours":
            w, V = np.asarray(res.eigenvalues_), np.asarray(res.eigenvectors_)
            out = {"epsilon": float(res.epsilon_)}
        else:
            w, V = res[0].numpy(), res[1].numpy()
            out = {"epsilon": base_info.get("epsilon"), "solver": base_info.get("solver"),
                   "lobpcg_iterations": base_info.get("lobpcg_iterations"),
                   "lobpcg_converged": base_info.get("lobpcg_converged")}
        cache[side] = (w, V)
        out["lambda_1"] = float(w[1])
        out["lambda_m"] = float(w[-1])
        if "ours" in cache and "baseline" in cache:
            ag = agreement(cache["ours"][0], cache["ours"][1][:, 1:], cache["baseline"][0],
                           cache["baseline"][1][:, 1:])
            out.update({"ours_vs_baseline_eigenvalues_max_rel_diff": ag["eigenvalues_max_rel_diff"],
                        "ours_vs_baseline_psi_min_abs_corr": ag["psi_min_abs_corr"],
                        "ours_vs_baseline_subspace_min_canonical_corr": ag["subspace_min_canonical_corr"]})
            cache["agreement"] = ag
        return out

    def finalize(rec: dict) -> None:
        _finalize(rec, ctx, variant, DM, X, cache, base_info, rate64, rate32, flops)

    targets = []
    if variant == "P8A":
        targets.append(H.Target(ctx.label("baseline / ours >= 5"), lambda rec: rec.get("ratio"), ">=", 5.0))
        targets.append(H.Target(ctx.label("eigenvalues agree: max rel diff <= 1e-6"),
                                lambda rec: (rec["extra"].get("agreement") or {}).get("eigenvalues_max_rel_diff"),
                                "<=", 1e-6))
    else:
        targets.append(H.Target(ctx.label("ours <= 120 s"),
                                lambda rec: rec["sides"]["ours"].get("median_s"), "<=", 120.0))
    return H.Plan(
        name=variant,
        title=("diffusion map end to end (kNN kernel, alpha=1, 10 eigenvectors): DiffusionMap.fit vs "
               "pure-PyTorch cdist/topk + sparse + lobpcg" if variant == "P8A"
               else "diffusion map end to end at N=100k (ours only)"),
        size=f"N={N}, D={D}, k={K}, m={M}",
        params={"N": N, "D": D, "k": K, "m": M, "alpha": ALPHA, "epsilon": "median", "box": BOX,
                "harmonics": HARMONICS, "noise": NOISE, "dtype": "float64"},
        ours=ours if DM else None,
        base=baseline if (base and base_nr is None) else None,
        ours_failed=ours_fail,
        base_failed=base_fail if base_nr is None else None,
        base_not_run=base_nr,
        check=check,
        flops=flops,
        targets=targets,
        notes=[f"predicted = kNN screen FLOPs N^2*(D+2) = {flops:.3g} at the float32 matmul rate measured here "
               f"({rate32['rate_flops'] / 1e9:.0f} GFLOP/s; float64 {rate64['rate_flops'] / 1e9:.0f} GFLOP/s)"],
        extra={"float64_gemm": rate64, "float32_gemm": rate32, "float64_gemm_gflops": rate64["rate_flops"] / 1e9,
               "float32_gemm_gflops": rate32["rate_flops"] / 1e9,
               "predicted_knn_float64_s": flops / rate64["rate_flops"],
               "predicted_knn_float32_s": flops / rate32["rate_flops"]},
        rate_flops=rate32["rate_flops"],
        repeats_cap={"full": 3, "quick": 3, "smoke": 1}[ctx.mode],
        time_budget_s=({"full": 600.0, "quick": 120.0, "smoke": 10.0} if variant == "P8A"
                       else {"full": 400.0, "quick": 120.0, "smoke": 10.0})[ctx.mode],
        finalize=finalize,
    )


def _finalize(rec, ctx, variant, DM, X, cache, base_info, rate64, rate32, flops) -> None:
    ex = rec["extra"]
    notes = rec["notes"]
    ag = cache.get("agreement")
    if ag is not None:
        ex["agreement"] = ag
        notes.append(f"ours vs baseline: eigenvalues max rel diff {ag['eigenvalues_max_rel_diff']:.2e}; "
                     f"min |corr| psi_1..psi_{M} {ag['psi_min_abs_corr']:.6f}; min canonical corr of the spans "
                     f"{ag['subspace_min_canonical_corr']:.6f}")
    if "ours" in cache:
        w = cache["ours"][0]
        ex["ours_eigenvalues"] = [float(v) for v in w]
        gaps = -np.diff(w)  # lambda_i - lambda_(i+1)
        ex["ours_min_relative_gap"] = float(np.min(gaps[1:] / w[1:-1])) if len(w) > 2 else None
    o = rec["sides"]["ours"].get("median_s")
    if o:
        ex["ours_over_predicted_knn_float32"] = o / ex["predicted_knn_float32_s"]
    # the time breakdown of ours: one instrumented fit
    if DM is not None and rec["sides"]["ours"]["status"] == "ok":
        try:
            bd = ours_breakdown(DM, X, ctx.threads, keep=cache)
            ex["ours_breakdown"] = bd
            ex["ours_knn_over_predicted"] = bd["knn_s"] / ex["predicted_knn_float32_s"]
            notes.append("ours, one instrumented fit: " + ", ".join(
                f"{k[:-2]} {H.fmt_time(bd[k])}" for k in ("knn_s", "kernel_assembly_s", "normalisations_and_rest_s",
                                                         "eigensolver_s", "total_s"))
                + f"; kNN / predicted (N^2(D+2) at float32 rate) = {ex['ours_knn_over_predicted']:.2f}")
        except Exception as e:  # noqa: BLE001
            ex["ours_breakdown"] = {"status": "failed", "reason": f"{type(e).__name__}: {e}",
                                    "traceback": traceback.format_exc(limit=6)}
    if base_info:
        ex["baseline_breakdown"] = dict(base_info)
        b = base_info
        notes.append(f"baseline, last call: knn {H.fmt_time(b.get('knn_s'))}, kernel+normalisations "
                     f"{H.fmt_time(b.get('kernel_s'))}, eigensolver ({b.get('solver')}) {H.fmt_time(b.get('eigen_s'))}"
                     + (f"; lobpcg {b.get('lobpcg_iterations')} iterations, {b.get('lobpcg_converged')}/{M + 1} pairs "
                        f"converged{' (stopped by the iteration cap)' if b.get('lobpcg_hit_niter') else ''}"
                        if b.get("solver") == "lobpcg" else ""))
    if variant != "P8A":
        return
    if ctx.mode == "smoke":
        ex["peers"] = {p: {"status": "not run", "reason": "peers are skipped in smoke mode"} for p in PEERS}
        return
    if "ours" not in cache:
        ex["peers"] = {p: {"status": "not run", "reason": "ours did not run (its epsilon is the peers' input)"}
                       for p in PEERS}
        return
    eps = float(rec["sides"]["ours"]["errors"].get("epsilon"))
    w_ours, V_ours = cache["ours"]
    peers: dict = {}
    with tempfile.TemporaryDirectory(prefix="congruence-p8-") as tmp:
        xp = os.path.join(tmp, "X.npy")
        np.save(xp, X)
        for name in PEERS:
            vp = os.path.join(tmp, f"psi_{name}.npy")
            pr = run_peer(name, xp, eps, ctx.threads, min(rec.get("repeats") or 1, 3), vp)
            if pr.get("status") == "ok":
                V = np.load(vp) if os.path.exists(vp) else None
                pr["vs_ours"] = agreement(w_ours[1:], V_ours[:, 1:], pr["eigenvalues"], V)
                if o:
                    pr["peer_over_ours"] = pr["seconds"] / o
                if name == "pydiffmap" and DM is not None:
                    try:  # its max(K, K^T) symmetrisation, in ours
                        with warnings.catch_warnings():  # a given epsilon: the k-th neighbour warning
                            warnings.simplefilter("ignore")
                            dm = DM(n_components=M, k=K, epsilon=eps, alpha=ALPHA, symmetrize="max",
                                    num_threads=ctx.threads).fit(X)
                        pr["vs_ours_symmetrize_max"] = agreement(dm.eigenvalues_[1:], dm.eigenvectors_[:, 1:],
                                                                 pr["eigenvalues"], V)
                    except Exception as e:  # noqa: BLE001
                        pr["vs_ours_symmetrize_max"] = {"failed": f"{type(e).__name__}: {e}"}
                if name == "datafold" and "neighbours" in cache:
                    try:  # its unsymmetrised kNN kernel, on ours' neighbours
                        wr, Vr = unsymmetrised_reference(cache["neighbours"], X.shape[0], eps)
                        pr["vs_unsymmetrised_reference"] = agreement(wr, Vr, pr["eigenvalues"], V)
                    except Exception as e:  # noqa: BLE001
                        pr["vs_unsymmetrised_reference"] = {"failed": f"{type(e).__name__}: {e}"}
            peers[name] = pr
    ex["peers"] = peers
    ex["peer_python"] = os.environ.get("CONGRUENCE_PEER_PYTHON") or sys.executable
    for name, pr in peers.items():
        if pr.get("status") == "ok":
            v = pr["vs_ours"]
            line = (f"peer {name} {pr.get('version')}: fit {H.fmt_time(pr['seconds'])} (median of "
                    f"{len(pr.get('times_s') or [])}, no warm-up) = {pr.get('peer_over_ours', float('nan')):.2f}x ours; "
                    f"vs ours: {_agreement_text(v)}")
            for key, what in (("vs_ours_symmetrize_max", "vs ours with symmetrize='max' (its convention)"),
                              ("vs_unsymmetrised_reference", "vs the unsymmetrised-kernel reference (its convention)")):
                sm = pr.get(key)
                if sm and "eigenvalues_max_rel_diff" in sm:
                    line += f"; {what}: {_agreement_text(sm)}"
            notes.append(line)
        else:
            notes.append(f"peer {name}: {pr.get('status')}: {pr.get('reason')}")


def _agreement_text(a: dict) -> str:
    t = f"eigenvalues max rel diff {a['eigenvalues_max_rel_diff']:.2e}"
    if a.get("psi_min_abs_corr") is not None:
        t += (f", min |corr| psi {a['psi_min_abs_corr']:.4f}, min canonical corr of the spans "
              f"{a['subspace_min_canonical_corr']:.4f}")
    return t
