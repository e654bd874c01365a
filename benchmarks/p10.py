"""P10 and P10R: top-k correlation through Dask against the single-process engine (issue 9).

P10 (the issue's case, the gather route):

n_x = n_y = 200,000 features over m = 1,024 samples (float32), k = 8, a self-join. Ours:
``congruence.distributed.topk_correlation`` on a ``dask.distributed.LocalCluster`` of this
machine's 2 worker processes (one thread each), the data already persisted on the workers in
column chunks of n / 8 (64 output blocks); the "baseline" is the single-process engine
``congruence.topk_correlation`` with 2 threads on the same data. Both return identical lists
(checked). Target: Dask's overhead ≤ 15%, i.e. single / dask ≥ 1/1.15.

Recorded once: one output block timed alone with one thread (t_block), and from it the estimated
wall time on 8 and 64 workers, ⌈blocks / workers⌉·t_block plus the measured merge-and-schedule
remainder of this run. Requires ``pip install congruence[dask]``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import harness as H

P10_SIZES = {"full": (1024, 200_000), "quick": (1024, 30_000), "smoke": (64, 2000)}  # (samples, features)
#: P10R: (samples, features, row chunk, column chunk)
P10R_SIZES = {"full": (131_072, 4096, 16_384, 2048), "quick": (32_768, 2048, 4096, 1024),
              "smoke": (512, 256, 128, 128)}
K = 8
SPLITS = 8  # column chunks per side


def _no_dask(name: str, n: int, m: int):
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        return H.Plan(name=name, title="top-k correlation through Dask", size=f"n={n}, m={m}",
                      ours_not_run=f"dask is not installed ({exc}); pip install congruence[dask]",
                      base_not_run="needs the same data set-up")
    return None


def _data(ctx, m: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(ctx.seed + 100)
    Z = rng.standard_normal((m, 32), dtype=np.float32)
    return Z @ rng.standard_normal((32, n), dtype=np.float32) + rng.standard_normal((m, n), dtype=np.float32)


def _cluster(X: np.ndarray, chunks: tuple):
    """Two single-threaded worker processes on loopback, the data persisted on them (not timed)."""
    import dask.array as da
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    t0 = time.perf_counter()
    Xd = da.from_array(X, chunks=chunks).persist()
    distributed.wait(Xd)

    def teardown():
        client.close()
        cluster.close()

    return Xd, time.perf_counter() - t0, teardown


def _checker(cache: dict):
    def check(side, res):
        cache[side] = (np.asarray(res[0]), np.asarray(res[1]))
        out = {}
        if "ours" in cache and "baseline" in cache:
            out["identical_indices"] = bool(np.array_equal(cache["ours"][1], cache["baseline"][1]))
            out["max_abs_err"] = float(np.max(np.abs(cache["ours"][0] - cache["baseline"][0])))
        return out

    return check


def build(case: str):
    return {"P10": build_gather, "P10R": build_reduce}[case]


def build_gather(ctx) -> H.Plan:
    m, n = P10_SIZES[ctx.mode]
    skip = _no_dask("P10", n, m)
    if skip is not None:
        return skip
    from congruence import topk_correlation as single
    from congruence.distributed import topk_correlation as distributed_topk

    X = _data(ctx, m, n)
    Xd, load_s, teardown = _cluster(X, (m, -(-n // SPLITS)))

    def ours():
        return distributed_topk(Xd, None, K)

    def base():
        return single(X, None, K, num_threads=ctx.threads)

    def finalize(rec):
        b = -(-n // SPLITS)
        t = time.perf_counter()
        single(X[:, :b], X[:, b:2 * b], K, num_threads=1)
        t_block = time.perf_counter() - t
        blocks = SPLITS * SPLITS  # a diagonal block (a self-join of one block) costs the same as the others
        d = rec["sides"]["ours"].get("median_s")
        rest = max(0.0, d - math.ceil(blocks / 2) * t_block) if d else None
        ex = rec["extra"]
        ex.update({"t_block_s": t_block, "blocks": blocks, "load_s": load_s, "merge_and_schedule_s": rest})
        for w in (8, 64):
            ex[f"estimated_{w}_workers_s"] = math.ceil(blocks / w) * t_block + (rest or 0.0)
        rec["notes"].append(f"one {b}-column block pair alone, 1 thread: {t_block:.2f} s; {blocks} blocks; data "
                            f"persisted on the workers in {load_s:.1f} s (not timed); estimated wall time on 8 "
                            f"workers {ex['estimated_8_workers_s']:.1f} s, on 64 workers "
                            f"{ex['estimated_64_workers_s']:.1f} s (ceil(blocks/workers) x t_block + this run's "
                            "remainder)")

    return H.Plan(
        name="P10",
        title=f"top-{K} correlation self-join through Dask (2 local workers) vs the single-process engine",
        size=f"n_x=n_y={n}, m={m}, {SPLITS}x{SPLITS} output blocks",
        params={"m": m, "n": n, "k": K, "splits": SPLITS, "workers": 2},
        ours=ours, base=base, check=_checker({}),
        flops=2.0 * m * n * n,
        targets=_targets(ctx),
        repeats_cap={"full": 2, "quick": 3, "smoke": 1}[ctx.mode],
        time_budget_s={"full": 2400.0, "quick": 120.0, "smoke": 20.0}[ctx.mode],
        finalize=finalize,
        teardown=teardown,
    )


def build_reduce(ctx) -> H.Plan:
    m, n, rows, cols = P10R_SIZES[ctx.mode]
    skip = _no_dask("P10R", n, m)
    if skip is not None:
        return skip
    from congruence import topk_correlation as single
    from congruence.distributed import topk_correlation as distributed_topk

    X = _data(ctx, m, n)
    Xd, load_s, teardown = _cluster(X, (rows, cols))
    blocks = -(-n // cols)

    def ours():
        return distributed_topk(Xd, None, K, samples="reduce")

    def base():
        return single(X, None, K, num_threads=ctx.threads)

    def finalize(rec):
        rec["extra"]["load_s"] = load_s
        rec["notes"].append(f"{m // rows} row chunks of {rows} samples x {blocks} column chunks of {cols}: "
                            f"{blocks * blocks} output blocks, {(m // rows) * blocks * blocks} partial products of "
                            f"{cols} x {cols} float64; data persisted on the workers in {load_s:.1f} s (not timed)")

    return H.Plan(
        name="P10R",
        title=f"top-{K} correlation self-join of sample-chunked data, Dask reduce route (2 local workers) vs the "
              "single-process engine",
        size=f"m={m} in row chunks of {rows}, n={n} in column chunks of {cols}",
        params={"m": m, "n": n, "k": K, "row_chunk": rows, "column_chunk": cols, "workers": 2},
        ours=ours, base=base, check=_checker({}),
        flops=2.0 * m * n * n,
        targets=_targets(ctx),
        repeats_cap={"full": 3, "quick": 3, "smoke": 1}[ctx.mode],
        time_budget_s={"full": 900.0, "quick": 120.0, "smoke": 20.0}[ctx.mode],
        finalize=finalize,
        teardown=teardown,
    )


def _targets(ctx) -> list:
    return [H.Target(ctx.label("single / dask >= 1/1.15 (overhead <= 15%)"), lambda rec: rec.get("ratio"), ">=", 1 / 1.15),
            H.Target(ctx.label("identical top-k lists"), _identical, ">=", 1.0)]


def _identical(rec):
    for side in ("baseline", "ours"):
        v = (rec["sides"][side].get("errors") or {}).get("identical_indices")
        if v is not None:
            return float(v)
    return None
