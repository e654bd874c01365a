"""Small, self-contained worked examples (need torch and scikit-learn: ``pip install congruence[examples]``).

- :mod:`congruence.examples.digits`: two small CNNs trained from different seeds on
  scikit-learn's bundled 8×8 handwritten digits (no download), the default job of
  ``congruence compare``.
- :mod:`congruence.examples.digits_matching`: MLPs and CNNs from four seeds — basis correlation
  per layer, with and without shared frozen early layers, and the interpolation barrier with and
  without permutation alignment (``python -m congruence.examples.digits_matching``; results in
  ``docs/examples/digits_matching.md``).

Nothing here is imported by ``import congruence``; import the submodule you need.
"""

__all__ = ["digits", "digits_matching"]
