"""Host-side checks of the CUDA kernels' index arithmetic (no GPU needed, only nvcc).

The pairwise kernels' thread maps (which accumulator of which thread holds which element of the
128 x 128 tile, and the top-1 reduction's slot/partner maps) are ``__host__ __device__``
functions, so a small host program compiled by nvcc can check them exhaustively on the CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "cuda_host", "thread_maps_check.cu")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "src", "cuda")), reason="needs the source tree")
def test_thread_maps_cover_the_tile_exactly_once(tmp_path):
    exe = tmp_path / "thread_maps_check"
    build = subprocess.run(
        ["nvcc", "-std=c++17", "--expt-relaxed-constexpr", "-I", os.path.join(ROOT, "src", "include"), SOURCE,
         "-o", str(exe)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["swizzle:", "ok", "mma:", "ok", "simt:", "ok"]
