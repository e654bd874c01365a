"""Small, self-contained worked examples (need torch and scikit-learn: ``pip install congruence[examples]``).

- :mod:`congruence.examples.digits`: two small CNNs trained from different seeds on
  scikit-learn's bundled 8×8 handwritten digits (no download), the default job of
  ``congruence compare``.
- :mod:`congruence.examples.digits_matching`: MLPs and CNNs from four seeds — basis correlation
  per layer, with and without shared frozen early layers, and the interpolation barrier with and
  without permutation alignment (``python -m congruence.examples.digits_matching``; results in
  ``docs/examples/digits_matching.md``).
- :mod:`congruence.examples.digits_subspace`: CNNs and MLPs from three seeds — maximum-match
  similarity (subspace match, Wang et al. 2018) per hidden layer at ε ∈ {0.15, 0.2, 0.25, 0.3,
  0.5}, with the maximal ε, dead neurons and self / untrained controls
  (``python -m congruence.examples.digits_subspace``; results in
  ``docs/examples/digits_subspace.md``).
- :mod:`congruence.examples.digits_agreement`: two ensembles of 20 MLPs and one of 10 CNNs, every
  epoch's correctness recorded — the TP-agreement histogram against the independence null,
  all-or-none fractions, learning-order constancy within and across architectures, the superset
  test, agreement and κ (``python -m congruence.examples.digits_agreement``; results in
  ``docs/examples/digits_agreement.md``).

Nothing here is imported by ``import congruence``; import the submodule you need.
"""

__all__ = ["digits", "digits_matching", "digits_subspace", "digits_agreement"]
