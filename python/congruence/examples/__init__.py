"""Small, self-contained worked examples (need torch and scikit-learn: ``pip install congruence[examples]``).

- :mod:`congruence.examples.digits`: two small CNNs trained from different seeds on
  scikit-learn's bundled 8×8 handwritten digits (no download), the default job of
  ``congruence compare``.

Nothing here is imported by ``import congruence``; import the submodule you need.
"""

__all__ = ["digits"]
