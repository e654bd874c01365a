"""The CUDA pairwise kernels, run on the CPU under a SIMT emulator (no GPU needed).

tests/cuda_host/emulate_pairwise.cpp compiles src/cuda/pairwise_kernels_cuda.cuh unchanged against
tests/cuda_host/simt_emulator.hpp (fibers for threads, real barriers with deadlock detection, warp
shuffles/ballots, mma.sync with the PTX ISA fragment layouts, deferred cp.async) and checks every
precision's main loop against a float64 product and every epilogue (dense, accumulate, top-1,
top-k lists with segments, threshold with capacity overflow) bit-exactly against the dense values,
including runs with the threads scheduled backwards. What this cannot show is listed in the
emulator's header: it is evidence about the kernels' logic, not about a GPU.

tests/cuda_host/emulate_column_stats.cpp does the same for the column-statistics kernels
(src/cuda/column_stats_kernels_cuda.cuh, through the launch sequences column_stats_cuda.cu uses):
column moments in both partial-kernel shapes, every input type, given and computed shifts, chunk
counts up to the warp reduce, NaN/Inf flags; the panel build for every input x output type, both
paths, optional shifts/scale, padding; the 16-bit conversions; reversed-schedule bit-identity.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "cuda_host", "emulate_pairwise.cpp")
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")

pytestmark = [
    pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH"),
    pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "src", "cuda")), reason="needs the source tree"),
]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    exe = tmp_path_factory.mktemp("emulator") / "emulate_pairwise"
    build = subprocess.run(
        [CXX, "-std=c++17", "-O2", "-DCONGRUENCE_HOST_EMULATION", "-Wno-unknown-pragmas",
         "-I", os.path.join(ROOT, "src", "include"), SOURCE, "-o", str(exe)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return str(exe)


@pytest.mark.parametrize("precision", ["float32", "float64", "tf32", "3xtf32", "bf16"])
def test_pairwise_kernels_under_emulation(emulator, precision):
    run = subprocess.run([emulator, precision], capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "ALL OK", out[-4000:]
    checks = [ln for ln in lines if ln.startswith("ok ")]
    assert len(checks) >= 20 and not any(ln.startswith("FAIL") for ln in lines), out[-4000:]


COLUMN_STATS_SOURCE = os.path.join(ROOT, "tests", "cuda_host", "emulate_column_stats.cpp")


@pytest.fixture(scope="module")
def column_stats_emulator(tmp_path_factory):
    exe = tmp_path_factory.mktemp("emulator") / "emulate_column_stats"
    build = subprocess.run(
        [CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-DCONGRUENCE_HOST_EMULATION", "-Wno-unknown-pragmas",
         "-I", os.path.join(ROOT, "src", "include"), COLUMN_STATS_SOURCE, "-o", str(exe)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return str(exe)


def test_column_stats_kernels_under_emulation(column_stats_emulator):
    run = subprocess.run([column_stats_emulator], capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "ALL OK", out[-4000:]
    checks = [ln for ln in lines if ln.startswith("ok ")]
    assert len(checks) >= 400 and not any(ln.startswith("FAIL") for ln in lines), out[-4000:]
