"""Functional agreement across many networks (Hacohen, Choshen & Weinshall 2020) and behaviour
under distortions (Akbarinia & Gegenfurtner 2019): METHODS.md §7 and §4.3.

- :class:`CorrectnessStore` (bit-packed c[network, checkpoint, example], saved and loaded) and
  :class:`CorrectnessRecorder` (a plain API and a training-loop callback);
- ensemble measures: :func:`tp_agreement`, :func:`tp_histogram` against the Poisson-binomial
  independence null, :func:`all_or_none`, :func:`accessibility`, :func:`learning_order_constancy`,
  :func:`superset_test`;
- pairwise measures over K models: :func:`agreement_matrix` / :func:`disagreement_matrix` and
  :func:`error_consistency` (Cohen's κ) on compiled popcount kernels, :func:`topk_agreement`,
  :func:`class_agreement`, :func:`jensen_shannon`;
- the distortion suite (:func:`distortion_suite`, :class:`Distortion`, :data:`DISTORTION_LEVELS`)
  and :func:`robustness_curves`.
"""

from .distortions import DISTORTION_LEVELS, Distortion, distortion_suite, to_unit_range
from .ensemble import (AllOrNone, OrderConstancy, SupersetTest, TPAHistogram, accessibility, all_or_none,
                       learning_order_constancy, poisson_binomial_pmf, superset_test, tp_agreement, tp_histogram)
from .pairwise import (ErrorConsistency, UndefinedKappaWarning, agreement_matrix, class_agreement,
                       disagreement_matrix, error_consistency, jensen_shannon, topk_agreement)
from .recorder import CorrectnessRecorder, top_k_correct
from .robustness import RobustnessCurves, robustness_curves
from .store import CorrectnessStore

__all__ = ["CorrectnessStore", "CorrectnessRecorder", "top_k_correct", "tp_agreement", "tp_histogram",
           "TPAHistogram", "poisson_binomial_pmf", "all_or_none", "AllOrNone", "accessibility",
           "learning_order_constancy", "OrderConstancy", "superset_test", "SupersetTest", "agreement_matrix",
           "disagreement_matrix", "error_consistency", "ErrorConsistency", "UndefinedKappaWarning",
           "topk_agreement", "class_agreement", "jensen_shannon", "DISTORTION_LEVELS", "Distortion",
           "distortion_suite", "to_unit_range", "robustness_curves", "RobustnessCurves"]
