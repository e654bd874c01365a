"""Command line: ``python -m benchmarks [--quick|--smoke] [--cases P1,P2] [--repeats N]
[--threads N] [--out DIR]``; also ``congruence bench`` through :func:`main`.

Exit status: 0 when every selected case ran (targets missed or not), 1 when a side failed
(raised, or the function it needs is missing), 2 on bad arguments; ``--strict`` also returns 1
on a missed target.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import traceback
from typing import Optional, Sequence

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_REPEATS = {"full": 5, "quick": 3, "smoke": 1}
SGEMM_SHAPE = {"full": (4096, 1024, 4096), "quick": (4096, 1024, 4096), "smoke": (1024, 256, 1024)}


def _parser() -> argparse.ArgumentParser:
    from .cases import CASES

    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark congruence against its pure-PyTorch baselines (same process, interleaved).",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats, same cases and targets")
    g.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat: checks that everything runs (CI)")
    p.add_argument("--cases", default=None, help=f"comma-separated subset of {','.join(CASES)} (default: all)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default: 5 full, 3 quick, 1 smoke)")
    p.add_argument("--threads", type=int, default=None, help="threads for torch, BLAS and congruence (default: all cores)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: benchmarks/results)")
    p.add_argument("--name", default=None, help="report file stem (default: bench-<mode>)")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument(
        "--fake",
        action="store_true",
        help="developer self-test of the harness: use torch stand-ins where congruence functions or "
        "baselines are missing (never for reported numbers)",
    )
    return p


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import harness as H
    from .cases import CASES, Context

    parser = _parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.list:
        from .cases import DESCRIPTIONS

        for k in CASES:
            print(f"{k:8s} {DESCRIPTIONS.get(k, '')}")
        return 0
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.cases:
        wanted = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in CASES]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    else:
        wanted = list(CASES)
    threads = args.threads or H.available_cores()
    if threads < 1:
        parser.error("--threads must be >= 1")
    repeats_explicit = args.repeats is not None
    repeats = args.repeats if repeats_explicit else DEFAULT_REPEATS[mode]
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    name = args.name or f"bench-{mode}"

    t_start = time.perf_counter()
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception as e:  # noqa: BLE001
        _log(f"note: torch unavailable ({type(e).__name__}: {e}); baselines cannot run")
    cg = cg_err = bl = bl_err = None
    try:
        import congruence as cg  # type: ignore[no-redef]
    except Exception as e:  # noqa: BLE001
        cg_err = f"{type(e).__name__}: {e}"
    if cg is not None:
        try:
            from congruence import baselines as bl  # type: ignore[no-redef]
        except Exception as e:  # noqa: BLE001
            bl_err = f"{type(e).__name__}: {e}"
    else:
        bl_err = f"congruence not importable ({cg_err})"

    # Limit the BLAS/OpenMP pools after every library that brings one has been loaded
    # (threadpoolctl only sees libraries already in the process).
    try:
        import scipy.linalg  # noqa: F401  (scipy's OpenBLAS, which the engine calls)
    except Exception:  # noqa: BLE001
        pass
    limiter = None
    try:
        import threadpoolctl

        limiter = threadpoolctl.threadpool_limits(limits=threads)
    except Exception:  # noqa: BLE001
        pass
    malloc_cfg = H.configure_malloc()
    machine = H.describe_machine(cg, cg_err)
    _log(f"congruence benchmarks — mode {mode}, threads {threads}, repeats {repeats}, cases {','.join(wanted)}")
    _log(f"  CPU {machine['cpu_model']} ({machine['cores_available']} cores), RAM {H.fmt_bytes(machine['ram_bytes'])}")
    la = machine.get("loadavg")
    if la and la[0] > 0.5:
        _log(f"  WARNING: load average {la[0]:.2f} before the run: other work on the machine will skew timings")
    if cg is None:
        _log(f"  congruence: NOT importable: {cg_err}")
    if bl is None:
        _log(f"  baselines: NOT importable: {bl_err}")
    if args.fake:
        _log("  --fake: torch stand-ins replace missing functions (self-test only)")

    sg = H.measure_sgemm(SGEMM_SHAPE[mode], reps=2 if mode == "smoke" else 3, seed=args.seed)
    bw = H.measure_copy_bandwidth((64 << 20) if mode == "smoke" else (256 << 20))
    _log(
        "  float32 matmul: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sg["gflops"].items())
        + f" GFLOP/s -> rate {sg['rate_flops'] / 1e9:.0f}; copy {bw['bytes_per_s'] / 1e9:.1f} GB/s"
    )

    ctx = Context(
        mode=mode,
        threads=threads,
        seed=args.seed,
        cg=cg,
        cg_error=cg_err,
        baselines=bl,
        baselines_error=bl_err,
        fake=args.fake,
        sgemm=sg,
        bandwidth=bw,
        flags=H.cpu_flags(),
    )
    report = {
        "mode": mode,
        "threads": threads,
        "repeats": repeats,
        "fake": bool(args.fake),
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "machine": machine,
        "sgemm": sg,
        "bandwidth": bw,
        "malloc": malloc_cfg,
        "cases": [],
        "wall_s": 0.0,
    }
    for cname in wanted:
        _log(f"[{cname}] building")
        t0 = time.perf_counter()
        try:
            plan = CASES[cname](ctx)
        except Exception as e:  # noqa: BLE001
            _log(f"[{cname}] BUILD FAILED: {type(e).__name__}: {e}")
            report["cases"].append(_failed_case(cname, e))
            continue
        _log(f"[{cname}] {plan.size} (data ready in {time.perf_counter() - t0:.1f} s)")
        try:
            rec = H.run_plan(plan, repeats, repeats_explicit, ctx, log=_log)
        except Exception as e:  # noqa: BLE001  (a harness bug; keep going with the other cases)
            rec = _failed_case(cname, e)
        finally:
            if plan.teardown:
                plan.teardown()
            del plan
            gc.collect()
        rec["wall_s"] = time.perf_counter() - t0
        report["cases"].append(rec)
        so, sb = rec["sides"]["ours"], rec["sides"]["baseline"]
        tg = "; ".join(f"{t['label']} -> {t['status']}" for t in rec.get("targets", []))
        ratio = f" | ratio {rec['ratio']:.2f}" if rec.get("ratio") else ""
        _log(f"[{cname}] ours {_cell(H, so)} | baseline {_cell(H, sb)}{ratio}")
        _log(f"[{cname}] {rec['status']}{': ' + tg if tg else ''}  ({rec['wall_s']:.1f} s)")
        report["wall_s"] = time.perf_counter() - t_start
        _write(H, report, args.out, name, plot=False)

    report["wall_s"] = time.perf_counter() - t_start
    report["loadavg_end"] = H.loadavg()
    paths = _write(H, report, args.out, name, plot=True)
    _log("")
    md = H.render_markdown(report)
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    _log("\n".join(table))
    _log("")
    _log("wrote " + ", ".join(paths.values()) + f"  (total {report['wall_s']:.1f} s)")
    if limiter is not None:
        try:
            limiter.restore_original_limits()
        except Exception:  # noqa: BLE001
            pass
    statuses = [c["status"] for c in report["cases"]]
    if any("FAILED" in s for s in statuses):
        return 1
    if args.strict and any(s.startswith("miss") for s in statuses):
        return 1
    return 0


def _cell(H, rec: dict) -> str:
    if rec["status"] == "ok":
        return f"{H.fmt_time(rec['median_s'])} (+{H.fmt_bytes(rec['peak_extra_max_bytes'])})"
    return f"{rec['status']}: {rec['reason']}"


def _failed_case(cname: str, e: BaseException) -> dict:
    side = {
        "status": "failed",
        "reason": f"{type(e).__name__}: {e}",
        "times_s": [],
        "median_s": None,
        "peak_extra_max_bytes": None,
        "errors": {},
        "traceback": traceback.format_exc(limit=8),
    }
    return {
        "case": cname,
        "title": "(failed before running)",
        "size": "-",
        "params": {},
        "repeats": 0,
        "flops": None,
        "sides": {"ours": dict(side), "baseline": dict(side)},
        "extra": {},
        "notes": [],
        "ratio": None,
        "targets": [],
        "status": "FAILED",
    }


def _write(H, report: dict, out: str, name: str, plot: bool) -> dict:
    if plot:
        return H.write_reports(report, out, name)
    import json

    os.makedirs(out, exist_ok=True)
    jp = os.path.join(out, f"{name}.json")
    with open(jp + ".tmp", "w") as f:
        json.dump(H._jsonable(report), f, indent=2)
    os.replace(jp + ".tmp", jp)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(H.render_markdown(report))
    return {"json": jp}


if __name__ == "__main__":
    sys.exit(main())
