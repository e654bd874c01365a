"""Shared by the example tests: run an example's ``main(argv)`` once, keeping what it printed and
the report its ``run()`` returned on the way out."""

import contextlib
import io

import pytest


def run_main_capturing_report(module, argv):
    """(report, printed output, exit code) of ``module.main(argv)``; ``module.run`` is wrapped so
    the report it builds is caught."""
    caught = []
    real_run = module.run

    def recording_run(*args, **kwargs):
        caught.append(real_run(*args, **kwargs))
        return caught[-1]

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(module, "run", recording_run)
        code = module.main(list(argv))
    assert len(caught) == 1
    return caught[0], out.getvalue(), code
