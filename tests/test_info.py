"""info(), cuda_available() and the ``congruence info`` command line."""

import json
import os
import subprocess
import tempfile
import sys

import pytest

import congruence as cg

KEYS = {"version", "python", "numpy", "scipy", "cpu", "blas", "threads", "memory_available", "cuda"}


def test_info_keys_and_types():
    info = cg.info()
    assert isinstance(info, dict)
    assert KEYS <= set(info), KEYS - set(info)
    assert info["version"] == cg.__version__ and isinstance(info["version"], str) and info["version"]
    assert {"compiler", "cxx_flags", "openmp", "machine"} <= set(info["cpu"])
    assert "engine" in info["blas"] and isinstance(info["blas"]["loaded"], list)
    assert isinstance(info["threads"]["default"], int) and info["threads"]["default"] >= 1
    assert isinstance(info["memory_available"], int) and info["memory_available"] > 0
    cuda = info["cuda"]
    assert isinstance(cuda["built"], bool) and isinstance(cuda["usable"], bool)
    assert cuda["usable"] == cg.cuda_available()
    if not cuda["usable"]:
        assert isinstance(cuda["reason"], str) and cuda["reason"]  # says why not
    json.dumps(info, default=str)  # serialisable (the CLI prints it)


def test_cuda_available_is_bool():
    v = cg.cuda_available()
    assert type(v) is bool
    assert cg.cuda_available() is v  # stable


def test_public_names():
    for name in ("ColumnStats", "ConstantFeatureWarning", "CrossStats", "MemoryBudgetError", "column_stats",
                 "correlation", "correlation_pairs", "cuda_available", "info", "knn", "max_correlation",
                 "topk_correlation"):
        assert name in cg.__all__ and hasattr(cg, name), name


def _run_cli(*args):
    # Run the package the tests import (installed or editable), from a neutral directory.
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(cg.__file__)))
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "congruence", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tempfile.gettempdir())


def test_cli_info_prints_json():
    proc = _run_cli("info")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert KEYS <= set(out)
    assert out["version"] == cg.__version__
    assert out["cuda"]["usable"] == cg.cuda_available()


def test_cli_requires_a_command():
    proc = _run_cli()
    assert proc.returncode != 0
    assert "usage" in proc.stderr.lower()


@pytest.mark.cuda
def test_cuda_devices_listed_when_available():
    cuda = cg.info()["cuda"]
    assert cuda["built"] and cuda["usable"]
    assert len(cuda["devices"]) >= 1
