import os, sys; sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: no per-example deadline (first calls pay for thread pools / BLAS warm-up) and a
# modest number of examples so the whole suite stays fast on a 2-core machine. Select another
# profile with HYPOTHESIS_PROFILE=dev (more examples) when hunting for bugs.
settings.register_profile(
    "ci", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # Also declared in pyproject.toml; repeated here so the marker exists when the suite is run
    # from a copy of tests/ without the project's pytest configuration.
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA device (skipped when congruence.cuda_available() is False)"
    )


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``@pytest.mark.cuda`` unless ``congruence.cuda_available()``."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return
    import congruence

    if congruence.cuda_available():
        return
    reason = congruence.info()["cuda"].get("reason") or "no usable CUDA device"
    skip = pytest.mark.skip(reason=f"congruence.cuda_available() is False: {reason}")
    for item in cuda_items:
        item.add_marker(skip)
