"""Ctrl-C interrupts a long computation between tiles (DESIGN.md §3)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, numpy as np, congruence as cg
    # A shell without job control starts background jobs with SIGINT ignored, and Python then
    # installs no handler of its own: restore the default so the test does not depend on how the
    # suite was launched.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    X = np.random.default_rng(0).standard_normal((512, 40000), dtype=np.float32)
    cg.topk_correlation(X, X[:, :64], 1)  # warm-up: imports, threads
    print("ready", flush=True)
    t0 = time.perf_counter()
    try:
        cg.topk_correlation(X, k=4)  # ~10 s of work even on an AVX-512 box: far longer than the 0.5 s before SIGINT
    except KeyboardInterrupt:
        print("interrupted %.3f" % (time.perf_counter() - t0), flush=True)
        sys.exit(0)
    print("finished", flush=True)
    sys.exit(1)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigint_interrupts_between_tiles():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert out.startswith("interrupted")
    assert float(out.split()[1]) < 5.0  # stopped within a few tiles, not at the end
