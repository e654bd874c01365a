"""Benchmark machinery: interleaved timing, peak-memory sampling, float64 references, machine
description and the JSON / markdown / PNG reports.

A case is described by a :class:`Plan` (built in ``cases.py``): two zero-argument callables,
``ours`` and ``base``, that run the measured call on data prepared once; a ``check`` that turns a
result into error figures; the FLOPs and memory traffic used for the time prediction; and the
case's targets. :func:`run_plan` runs both sides in the same process: one warm-up each (whose
result is checked against a float64 reference), then ``repeats`` rounds interleaved
(ours, base, ours, base, ...), ``gc.collect()`` before every call, timing each call with
``perf_counter`` and recording the peak resident-set growth during the call.

Peak memory: a background thread reads ``/proc/self/statm`` every ~1 ms; in addition the kernel's
own high-water mark (``VmHWM`` in ``/proc/self/status``, reset before the call through
``/proc/self/clear_refs``) catches peaks shorter than the sampling interval or hidden while a
kernel holds the GIL. The reported figure is ``max(sampled peak, VmHWM) - RSS before the call``.
Memory the allocator keeps from an earlier call and reuses is not counted again, so the figure is
a lower bound of the call's working set; the first (warm-up) call is reported beside the timed ones.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import numpy as np

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def _status_kib(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status", "r") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS. False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_total_bytes() -> Optional[int]:
    return _meminfo("MemTotal")


def mem_available_bytes() -> Optional[int]:
    return _meminfo("MemAvailable")


def _meminfo(key: str) -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def configure_malloc(threshold: int = 1 << 20) -> dict:
    """Make RSS track live memory: glibc serves allocations >= ``threshold`` with mmap and gives
    them back on free, and trims the heap above ``threshold``. Without this, glibc's dynamic mmap
    threshold (up to 32 MiB) lets a second call reuse memory the first one freed, and the second
    call's RSS growth under-counts its working set. Applies to both sides alike."""
    out = {"threshold_bytes": threshold, "applied": False}
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok1 = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold))
        ok2 = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(threshold))
        out["applied"] = bool(ok1 == 1 and ok2 == 1)
        libc.malloc_trim(ctypes.c_size_t(0))
    except Exception as e:  # noqa: BLE001  (not glibc)
        out["error"] = f"{type(e).__name__}: {e}"
    return out


class PeakMemory:
    """Context manager measuring the peak RSS growth during its body.

    ``extra`` (bytes) = max(sampled peak, VmHWM after the body) - RSS at entry.
    """

    def __init__(self, interval: float = 1e-3):
        self.interval = interval
        self.start = 0
        self.peak_sampled = 0
        self.peak_hwm: Optional[int] = None
        self.extra = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hwm_ok = False

    def _sample(self) -> None:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            peak = self.peak_sampled
            n = 0
            while True:
                v = int(os.pread(fd, 128, 0).split()[1]) * PAGE_SIZE
                n += 1
                if v > peak:
                    peak = v
                    self.peak_sampled = v
                if self._stop.wait(self.interval):
                    break
            self.samples = n
        finally:
            os.close(fd)

    def __enter__(self) -> "PeakMemory":
        self._hwm_ok = _reset_hwm()
        self.start = rss_bytes()
        self.peak_sampled = self.start
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        peak = max(self.peak_sampled, rss_bytes())
        if self._hwm_ok:
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                self.peak_hwm = hwm * 1024
                peak = max(peak, self.peak_hwm)
        self.extra = max(0, peak - self.start)


# --------------------------------------------------------------------------------------------
# Machine description and calibration
# --------------------------------------------------------------------------------------------

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> Optional[list]:
    """1, 5 and 15 minute load averages (other work on the box skews two-core timings)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _version(mod: str) -> Optional[str]:
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "?")
    except Exception as e:  # noqa: BLE001
        return f"not importable ({type(e).__name__})"


def _jsonable(x: Any) -> Any:
    """Best-effort conversion of arbitrary objects into JSON-compatible values."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return _num(float(x))
    if isinstance(x, float):
        return _num(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


def _num(v: float) -> Any:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def describe_machine(congruence_mod: Any = None, congruence_error: Optional[str] = None) -> dict:
    flags = cpu_flags()
    info: dict = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_available": available_cores(),
        "cpu_flags": {f: (f in flags) for f in FLAGS_OF_INTEREST},
        "ram_bytes": mem_total_bytes(),
        "ram_available_bytes": mem_available_bytes(),
        "loadavg": loadavg(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "matplotlib": _version("matplotlib"),
    }
    try:
        import threadpoolctl

        info["threadpools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")}
            for d in threadpoolctl.threadpool_info()
        ]
    except Exception:  # noqa: BLE001
        pass
    if congruence_mod is not None:
        try:
            info["congruence"] = _jsonable(congruence_mod.info())
        except Exception as e:  # noqa: BLE001
            info["congruence"] = f"congruence.info() failed: {type(e).__name__}: {e}"
    else:
        info["congruence"] = f"not importable: {congruence_error}"
    return info


def measure_sgemm(shape=(4096, 1024, 4096), reps: int = 3, seed: int = 0) -> dict:
    """Float32 matrix-product rate: numpy, scipy BLAS and torch.mm on the same (M,K)@(K,N) shape,
    interleaved, ``reps`` timed calls each after a warm-up; the rate is the fastest median."""
    M, K, N = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = np.empty((M, N), np.float32)
    flops = 2.0 * M * K * N
    fns: dict = {"numpy": lambda: np.matmul(a, b, out=c)}
    try:
        from scipy.linalg import blas as _sblas

        at, bt = a.T, b.T  # Fortran-ordered views: C^T = B^T A^T without copies

        fns["scipy_blas"] = lambda: _sblas.sgemm(1.0, bt, at)
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        fns["torch"] = lambda: torch.mm(ta, tb, out=tc)
    except Exception:  # noqa: BLE001
        pass
    times: dict = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    gflops = {k: flops / statistics.median(v) / 1e9 for k, v in times.items()}
    best = max(gflops, key=gflops.get)
    return {
        "shape": [M, K, N],
        "reps": reps,
        "gflops": gflops,
        "times_s": times,
        "best": best,
        "rate_flops": gflops[best] * 1e9,
    }


def measure_copy_bandwidth(nbytes: int = 256 << 20, reps: int = 3) -> dict:
    """Memory bandwidth of a large float32 copy, counted as bytes read + bytes written."""
    n = nbytes // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    t = statistics.median(ts)
    return {"bytes": 2 * n * 4, "time_s": t, "bytes_per_s": 2 * n * 4 / t}


# --------------------------------------------------------------------------------------------
# Float64 references (chunked; never share code with the implementation under test)
# --------------------------------------------------------------------------------------------


def to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor
        t = a.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return np.asarray(a)


def col_stats64(A: np.ndarray, chunk: int = 4096):
    """Per-column mean and sqrt(sum of squared deviations) in float64, two-pass, column chunks."""
    n = A.shape[1]
    mean = np.empty(n)
    norm = np.empty(n)
    for j in range(0, n, chunk):
        a = A[:, j : j + chunk].astype(np.float64)
        mu = a.mean(axis=0)
        a -= mu
        mean[j : j + chunk] = mu
        norm[j : j + chunk] = np.sqrt(np.einsum("ij,ij->j", a, a))
    return mean, norm


def _unit64(A: np.ndarray, mean: np.ndarray, norm: np.ndarray) -> np.ndarray:
    a = A.astype(np.float64)
    a -= mean
    a /= norm
    return a


def corr64_blocks(Xsub: np.ndarray, Y: np.ndarray, chunk: int = 4096, ystats=None):
    """Yield (j0, block) with block = float64 Pearson correlation of the columns of ``Xsub`` with
    columns j0:j0+chunk of ``Y``. ``Xsub`` is (m, s) and small."""
    mx, nx = col_stats64(Xsub)
    xu = _unit64(Xsub, mx, nx)
    my, ny = ystats if ystats is not None else col_stats64(Y, chunk)
    for j in range(0, Y.shape[1], chunk):
        yu = _unit64(Y[:, j : j + chunk], my[j : j + chunk], ny[j : j + chunk])
        yield j, xu.T @ yu


def corr64(Xsub: np.ndarray, Y: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Float64 correlation matrix of the columns of Xsub against all columns of Y."""
    out = np.empty((Xsub.shape[1], Y.shape[1]))
    for j, blk in corr64_blocks(Xsub, Y, chunk):
        out[:, j : j + blk.shape[1]] = blk
    return out


def topk64(Xsub: np.ndarray, Y: np.ndarray, k: int, absolute: bool = False, chunk: int = 4096):
    """Float64 top-k (values desc, indices) of each column of Xsub against all columns of Y,
    reduced chunk by chunk (never holds more than one (s, chunk) block)."""
    s = Xsub.shape[1]
    best_v = np.full((s, 0), -np.inf)
    best_i = np.zeros((s, 0), np.int64)
    for j, blk in corr64_blocks(Xsub, Y, chunk):
        key = np.abs(blk) if absolute else blk
        kk = min(k, blk.shape[1])
        part = np.argpartition(-key, kk - 1, axis=1)[:, :kk]
        cand_v = np.concatenate([best_v, np.take_along_axis(key, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + j], axis=1)
        # sort by value desc, then index asc (ties to the lowest index)
        order = np.lexsort((cand_i, -cand_v), axis=1)[:, :k]
        best_v = np.take_along_axis(cand_v, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return best_v, best_i


def pair_corr64(X: np.ndarray, Y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Float64 correlation of X[:, rows[t]] with Y[:, cols[t]] for each t."""
    out = np.empty(len(rows))
    for t, (i, j) in enumerate(zip(rows, cols)):
        if j < 0:
            out[t] = np.nan
            continue
        x = X[:, i].astype(np.float64)
        y = Y[:, j].astype(np.float64)
        x -= x.mean()
        y -= y.mean()
        out[t] = float(x @ y / math.sqrt((x @ x) * (y @ y)))
    return out


def max_abs(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return 0.0
    if np.isnan(a).any():
        return float("nan")
    return float(np.max(np.abs(a)))


# --------------------------------------------------------------------------------------------
# Plans, targets and results
# --------------------------------------------------------------------------------------------

SIDES = ("ours", "baseline")


@dataclass
class Target:
    """A pass/miss criterion on a finished case. ``metric`` maps the case record (dict) to a
    number or None (not available)."""

    label: str
    metric: Callable[[dict], Optional[float]]
    op: str  # ">=" or "<="
    threshold: float

    def evaluate(self, rec: dict) -> dict:
        try:
            v = self.metric(rec)
        except Exception as e:  # noqa: BLE001
            return {"label": self.label, "value": None, "status": f"n/a ({type(e).__name__}: {e})"}
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return {"label": self.label, "value": None, "status": "n/a"}
        ok = v >= self.threshold if self.op == ">=" else v <= self.threshold
        return {"label": self.label, "value": float(v), "threshold": self.threshold, "op": self.op,
                "status": "pass" if ok else "miss"}


@dataclass
class Plan:
    name: str
    title: str
    size: str
    params: dict = field(default_factory=dict)
    ours: Optional[Callable[[], Any]] = None
    base: Optional[Callable[[], Any]] = None
    ours_not_run: Optional[str] = None  # reason; a legitimate skip
    base_not_run: Optional[str] = None
    ours_failed: Optional[str] = None  # e.g. function unavailable: counts as a failure
    base_failed: Optional[str] = None
    check: Optional[Callable[[str, Any], dict]] = None  # (side, result) -> {"max_abs_err": ..}
    flops: Optional[float] = None
    traffic_bytes: dict = field(default_factory=dict)  # side -> bytes moved (prediction model)
    targets: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    rate_flops: Optional[float] = None  # matmul rate for the prediction (default: the run's)
    repeats_cap: Optional[int] = None  # used unless --repeats was given explicitly
    time_budget_s: Optional[float] = None  # timed rounds are cut to fit (at least 1)
    teardown: Optional[Callable[[], None]] = None
    probe: Optional[Callable[[], None]] = None  # run after the warm-ups and after each timed round
    finalize: Optional[Callable[[dict], None]] = None  # may update the record before targets


@dataclass
class SideRecord:
    status: str = "not run"  # ok | not run | failed
    reason: Optional[str] = None
    times_s: list = field(default_factory=list)
    median_s: Optional[float] = None
    min_s: Optional[float] = None
    warmup_s: Optional[float] = None
    peak_extra_bytes: list = field(default_factory=list)
    peak_extra_max_bytes: Optional[int] = None
    warmup_peak_extra_bytes: Optional[int] = None
    errors: dict = field(default_factory=dict)
    predicted_s: Optional[float] = None
    traceback: Optional[str] = None


def _call(fn: Callable[[], Any], sampler_interval: float):
    gc.collect()
    with PeakMemory(sampler_interval) as pm:
        t0 = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t0
    return r, dt, pm.extra


def _fail(rec: SideRecord, where: str, e: BaseException) -> None:
    rec.status = "failed"
    rec.reason = f"{where}: {type(e).__name__}: {e}"
    rec.traceback = traceback.format_exc(limit=8)


def run_plan(plan: Plan, repeats: int, repeats_explicit: bool, ctx: Any, log=print) -> dict:
    """Run a plan: warm-up + check for each side, then interleaved timed rounds."""
    sides = {"ours": SideRecord(), "baseline": SideRecord()}
    fns = {"ours": plan.ours, "baseline": plan.base}
    for s, nr, fl in (("ours", plan.ours_not_run, plan.ours_failed), ("baseline", plan.base_not_run, plan.base_failed)):
        if fl:
            sides[s].status, sides[s].reason = "failed", fl
            fns[s] = None
        elif nr or fns[s] is None:
            sides[s].status, sides[s].reason = "not run", nr or "no callable"
            fns[s] = None
    # predictions
    rate = plan.rate_flops or (ctx.sgemm.get("rate_flops") if ctx.sgemm else None)
    bw = ctx.bandwidth.get("bytes_per_s") if ctx.bandwidth else None
    if plan.flops and rate:
        for s in SIDES:
            sides[s].predicted_s = plan.flops / rate + (plan.traffic_bytes.get(s, 0) / bw if bw else 0.0)

    interval = ctx.sampler_interval
    # warm-up + correctness check
    for s in SIDES:
        fn = fns[s]
        if fn is None:
            continue
        try:
            r, dt, extra = _call(fn, interval)
        except Exception as e:  # noqa: BLE001
            _fail(sides[s], "warm-up call raised", e)
            fns[s] = None
            log(f"    {s:8s} warm-up FAILED: {sides[s].reason}")
            continue
        sides[s].warmup_s, sides[s].warmup_peak_extra_bytes = dt, extra
        if plan.check is not None:
            try:
                sides[s].errors = _jsonable(plan.check(s, r))
            except Exception as e:  # noqa: BLE001
                sides[s].errors = {"check_failed": f"{type(e).__name__}: {e}"}
                sides[s].traceback = traceback.format_exc(limit=8)
        del r
        log(f"    {s:8s} warm-up {fmt_time(dt):>10s}  peak +{fmt_bytes(extra):>10s}  {_short_errors(sides[s].errors)}")

    # timed, interleaved rounds
    live = [s for s in SIDES if fns[s] is not None]
    n = repeats
    if not repeats_explicit and plan.repeats_cap is not None:
        n = min(n, plan.repeats_cap)
    if plan.time_budget_s and live:
        per_round = sum(sides[s].warmup_s or 0.0 for s in live)
        if per_round > 0:
            n_fit = max(1, int(plan.time_budget_s // per_round))
            if n_fit < n and not repeats_explicit:
                plan.notes.append(f"timed rounds cut from {n} to {n_fit} to fit the case's {plan.time_budget_s:.0f} s budget")
                n = n_fit
    if plan.probe is not None:
        plan.probe()
    for _ in range(n):
        for s in live:
            if fns[s] is None:
                continue
            try:
                r, dt, extra = _call(fns[s], interval)
                del r
            except Exception as e:  # noqa: BLE001
                _fail(sides[s], "timed call raised", e)
                fns[s] = None
                continue
            sides[s].times_s.append(dt)
            sides[s].peak_extra_bytes.append(extra)
        if plan.probe is not None:
            plan.probe()
    gc.collect()
    for s in SIDES:
        rec = sides[s]
        if rec.times_s and rec.status != "failed":
            rec.status = "ok"
            rec.reason = None
            rec.median_s = statistics.median(rec.times_s)
            rec.min_s = min(rec.times_s)
            rec.peak_extra_max_bytes = max(rec.peak_extra_bytes)
        elif rec.status == "not run" and rec.reason is None:
            rec.reason = "no timed runs"

    out: dict = {
        "case": plan.name,
        "title": plan.title,
        "size": plan.size,
        "params": _jsonable(plan.params),
        "repeats": n,
        "flops": plan.flops,
        "traffic_bytes_model": plan.traffic_bytes,
        "sides": {s: _jsonable(asdict(sides[s])) for s in SIDES},
        "extra": _jsonable(plan.extra),
        "notes": list(plan.notes),
    }
    o, b = sides["ours"].median_s, sides["baseline"].median_s
    out["ratio"] = (b / o) if (o and b) else None
    o, b = sides["ours"].min_s, sides["baseline"].min_s
    out["ratio_of_minimums"] = (b / o) if (o and b) else None
    if plan.finalize is not None:
        plan.finalize(out)
    out["targets"] = [t.evaluate(out) for t in plan.targets]
    sts = [t["status"] for t in out["targets"]]
    if any(x == "miss" for x in sts):
        out["status"] = "miss"
    elif sts and all(x == "pass" for x in sts):
        out["status"] = "pass"
    elif not sts:
        out["status"] = "no target"
    else:
        out["status"] = "n/a"
    if any(sides[s].status == "failed" for s in SIDES):
        out["status"] = "FAILED" if out["status"] != "miss" else "miss+FAILED"
    return out


def _short_errors(errs: dict) -> str:
    parts = []
    for k, v in errs.items():
        if isinstance(v, float) and k.endswith("_frac"):
            parts.append(f"{k}={v:.3f}")
        elif isinstance(v, float):
            parts.append(f"{k}={v:.2e}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Formatting and reports
# --------------------------------------------------------------------------------------------


def fmt_time(t: Optional[float]) -> str:
    if t is None:
        return "-"
    if t >= 1.0:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return "-"
    b = float(b)
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(b) >= div:
            return f"{b / div:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_err(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.2g}"


def _side_cell(rec: dict, what: str) -> str:
    if rec["status"] != "ok":
        tag = "not run" if rec["status"] == "not run" else "FAILED"
        return tag
    if what == "time":
        return fmt_time(rec["median_s"])
    if what == "mem":
        return fmt_bytes(rec["peak_extra_max_bytes"])
    return "-"


def _err_cell(rec: dict) -> str:
    e = rec.get("errors") or {}
    if "max_abs_err" in e:
        return fmt_err(e["max_abs_err"])
    if "check_failed" in e:
        return "check failed"
    return "-"


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# congruence benchmarks ({report['mode']})", ""]
    flags = ", ".join(f for f, on in m.get("cpu_flags", {}).items() if on) or "none of interest"
    lines += [
        f"- date: {m.get('date')}",
        f"- CPU: {m.get('cpu_model')} — {m.get('cores_available')} cores available "
        f"({m.get('cores_logical')} logical); flags: {flags}",
        f"- RAM: {fmt_bytes(m.get('ram_bytes'))}; threads used: {report['threads']}; load average at start "
        f"{m.get('loadavg')}, at end {report.get('loadavg_end')}",
        f"- python {m.get('python')}, numpy {m.get('numpy')}, scipy {m.get('scipy')}, torch {m.get('torch')}",
    ]
    cg = m.get("congruence")
    if isinstance(cg, dict):
        lines.append(f"- congruence.info(): {_summarise_info(cg)}")
    else:
        lines.append(f"- congruence: {cg}")
    sg = report.get("sgemm") or {}
    if sg:
        g = ", ".join(f"{k} {v:.0f}" for k, v in sg["gflops"].items())
        lines.append(f"- float32 matmul {sg['shape']} GFLOP/s: {g} → rate {sg['rate_flops'] / 1e9:.0f} GFLOP/s")
    bw = report.get("bandwidth") or {}
    if bw:
        lines.append(f"- copy bandwidth (read+write): {bw['bytes_per_s'] / 1e9:.1f} GB/s")
    lines.append(f"- repeats: {report['repeats']} (interleaved, after one warm-up each); total wall {report['wall_s']:.1f} s")
    lines.append("")
    lines.append(
        "| case | size | ours median | baseline median | ratio (base/ours) | target | status | "
        "max err ours / base | peak extra mem ours / base | predicted ours / base |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in report["cases"]:
        so, sb = c["sides"]["ours"], c["sides"]["baseline"]
        tgt = "; ".join(
            f"{t['label']}: {_fmt_target_value(t)} {t['status']}" for t in c["targets"]
        ) or "-"
        ratio = f"{c['ratio']:.2f}" if c.get("ratio") else "-"
        pred = f"{fmt_time(so.get('predicted_s'))} / {fmt_time(sb.get('predicted_s'))}"
        lines.append(
            f"| {c['case']} | {c['size']} | {_side_cell(so, 'time')} | {_side_cell(sb, 'time')} | {ratio} | "
            f"{tgt} | {c['status']} | {_err_cell(so)} / {_err_cell(sb)} | "
            f"{_side_cell(so, 'mem')} / {_side_cell(sb, 'mem')} | {pred} |"
        )
    lines.append("")
    lines.append("## Details")
    for c in report["cases"]:
        lines.append("")
        lines.append(f"### {c['case']}: {c['title']}")
        lines.append(f"- size: {c['size']}; timed rounds: {c['repeats']}")
        if c.get("ratio"):
            lines.append(
                f"- ratio baseline/ours: of medians {c['ratio']:.3f}, of minimums {c.get('ratio_of_minimums') or 0:.3f}"
            )
        if c.get("flops"):
            lines.append(f"- FLOPs (2·m·n_x·n_y): {c['flops']:.3g}")
        for s in SIDES:
            r = c["sides"][s]
            if r["status"] == "ok":
                ts = ", ".join(fmt_time(t) for t in r["times_s"])
                lines.append(
                    f"- {s}: median {fmt_time(r['median_s'])} (all: {ts}; warm-up {fmt_time(r['warmup_s'])}); "
                    f"predicted {fmt_time(r.get('predicted_s'))}; peak extra {fmt_bytes(r['peak_extra_max_bytes'])} "
                    f"(warm-up {fmt_bytes(r['warmup_peak_extra_bytes'])}); errors: {_short_errors(r['errors']) or '-'}"
                )
            else:
                lines.append(f"- {s}: **{r['status']}** — {r['reason']}")
                if r.get("errors"):
                    lines.append(f"  - errors from warm-up: {_short_errors(r['errors'])}")
        for t in c["targets"]:
            lines.append(f"- target {t['label']}: {_fmt_target_value(t)} → **{t['status']}**")
        ex = c.get("extra") or {}
        for k, v in ex.items():
            if isinstance(v, (dict, list)):
                continue
            lines.append(f"- {k}: {v if not isinstance(v, float) else f'{v:.4g}'}")
        for n in c.get("notes", []):
            lines.append(f"- note: {n}")
    lines.append("")
    lines.append(
        "Prediction model: FLOPs / (measured float32 matmul rate) + (modelled bytes moved) / (measured copy "
        "bandwidth). Peak extra memory: max over timed calls of (peak RSS during the call − RSS before it), "
        "from a 1 ms /proc/self/statm sampler and the kernel's VmHWM."
    )
    return "\n".join(lines) + "\n"


def _summarise_info(d: dict, limit: int = 700) -> str:
    """One line from congruence.info(): scalar leaves as key=value, lists as their length."""
    parts = []

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, list):
            parts.append(f"{prefix}=[{len(v)} items]")
        else:
            parts.append(f"{prefix}={v}")

    walk("", d)
    text = "; ".join(p for p in parts if not p.startswith(("python=", "numpy=", "scipy=")))
    return "`" + (text if len(text) <= limit else text[: limit - 3] + "...") + "`"


def _fmt_target_value(t: dict) -> str:
    v = t.get("value")
    if v is None:
        return "-"
    return f"{v:.3g}"


def write_plot(report: dict, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        print(f"note: matplotlib not available ({type(e).__name__}: {e}); skipping the plot")
        return None
    cases = report["cases"]
    names = [c["case"] for c in cases]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(names) + 4), 4.5))
    x = np.arange(len(names))
    w = 0.38
    for off, side, color in ((-w / 2, "ours", "#1f77b4"), (w / 2, "baseline", "#ff7f0e")):
        vals = [c["sides"][side]["median_s"] or 0.0 for c in cases]
        ax1.bar(x + off, vals, w, label=side, color=color)
        for xi, c in zip(x, cases):
            if c["sides"][side]["status"] != "ok":
                ax1.text(xi + off, 0.02, "not run" if c["sides"][side]["status"] == "not run" else "FAILED",
                         rotation=90, ha="center", va="bottom", fontsize=7, transform=ax1.get_xaxis_transform())
        preds = [c["sides"][side].get("predicted_s") for c in cases]
        for xi, p in zip(x, preds):
            if p:
                ax1.plot([xi + off - w / 2, xi + off + w / 2], [p, p], color="k", lw=1)
    ax1.set_xticks(x, names)
    ax1.set_ylabel("median time (s); black line: predicted")
    pos = [v for c in cases for s in SIDES for v in (c["sides"][s]["median_s"], c["sides"][s].get("predicted_s")) if v]
    if pos and max(pos) / min(pos) > 30:
        ax1.set_yscale("log")
        ax1.set_ylim(min(pos) / 3, max(pos) * 2)
    else:
        ax1.set_ylim(0, (max(pos) if pos else 1.0) * 1.15)
    ax1.legend()
    ax1.set_title(f"time ({report['mode']}, {report['threads']} threads)")
    ratios = [c.get("ratio") or 0.0 for c in cases]
    ax2.bar(x, ratios, 0.6, color="#2ca02c")
    for xi, c in zip(x, cases):
        for t in c["targets"]:
            if t["label"].startswith("ratio") and "threshold" in t:
                ax2.plot([xi - 0.3, xi + 0.3], [t["threshold"]] * 2, color="r", lw=2)
        tx = [c["status"]]
        fl = (c.get("extra") or {}).get("ours_over_floor")
        if fl:
            tx.append(f"ours/floor {fl:.2f}")
        if not c.get("ratio"):
            tx.insert(0, "ratio n/a")
        ax2.text(xi, (c.get("ratio") or 0.0), "\n".join(tx), ha="center", va="bottom", fontsize=7)
    ax2.axhline(1.0, color="gray", lw=0.8, ls="--")
    tops = ratios + [t.get("threshold", 0.0) for c in cases for t in c["targets"] if t["label"].startswith("ratio")]
    ax2.set_ylim(0, max(tops + [1.0]) * 1.3)
    ax2.set_xticks(x, names)
    ax2.set_ylabel("baseline time / our time (red: target)")
    ax2.set_title("speed ratio")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(report: dict, out_dir: str, name: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    jp = os.path.join(out_dir, f"{name}.json")
    tmp = jp + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_jsonable(report), f, indent=2)
    os.replace(tmp, jp)
    paths["json"] = jp
    mp = os.path.join(out_dir, f"{name}.md")
    with open(mp, "w") as f:
        f.write(render_markdown(report))
    paths["md"] = mp
    pp = write_plot(report, os.path.join(out_dir, f"{name}.png"))
    if pp:
        paths["png"] = pp
    return paths
