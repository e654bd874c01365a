"""What every representational-similarity measure declares about itself (METHODS.md §2.0).

A measure is a plain function decorated with :func:`measure`; the decorator attaches a
:class:`MeasureInfo` as ``fn.info`` and records the function in :data:`REGISTRY`, so the property
tests can check every declared invariance (and that every undeclared one fails on some input),
and ``congruence.compare`` can list what is available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

#: Transformations a measure may be invariant to (applied to one argument, METHODS.md §2.0):
#: O orthogonal X -> XQ, S isotropic scaling X -> cX, T translation X -> X + 1vᵀ,
#: P feature permutation, L invertible linear X -> XA.
INVARIANCES = ("orthogonal", "isotropic_scaling", "translation", "permutation", "invertible_linear")

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class MeasureInfo:
    """Metadata of one measure.

    Attributes
    ----------
    name : str
    invariances : frozenset of str
        Subset of :data:`INVARIANCES` the value is invariant to, for a transformation of either
        argument (for asymmetric measures: see ``invariances_second``).
    invariances_second : frozenset of str or None
        For asymmetric measures whose second argument has different invariances (linear regression
        R²: the predictor is invariant to any invertible linear map); None means the same set.
    symmetric : bool
        m(X, Y) == m(Y, X).
    streamable : bool
        Exactly computable from a streamed state (CrossStats or an extended state).
    estimator : bool
        The value is an estimator that depends on batching (minibatch CKA), not a fixed function
        of (X, Y).
    reference : str
        Paper reference.
    """

    name: str
    invariances: frozenset
    symmetric: bool
    streamable: bool
    invariances_second: frozenset | None = None
    estimator: bool = False
    reference: str = ""

    def invariant_to(self, transformation: str, argument: int = 0) -> bool:
        if transformation not in INVARIANCES:
            raise ValueError(f"unknown transformation {transformation!r}; one of {INVARIANCES}")
        inv = self.invariances if argument == 0 or self.invariances_second is None else self.invariances_second
        return transformation in inv


REGISTRY: dict[str, Callable] = {}


def measure(name: str, *, invariances: tuple[str, ...], symmetric: bool, streamable: bool,
            invariances_second: tuple[str, ...] | None = None, estimator: bool = False,
            reference: str = "") -> Callable[[F], F]:
    """Decorator: attach a :class:`MeasureInfo` to a measure function and register it."""
    for t in invariances + (invariances_second or ()):
        if t not in INVARIANCES:
            raise ValueError(f"unknown invariance {t!r}")

    def wrap(fn: F) -> F:
        fn.info = MeasureInfo(  # type: ignore[attr-defined]
            name=name, invariances=frozenset(invariances), symmetric=symmetric, streamable=streamable,
            invariances_second=None if invariances_second is None else frozenset(invariances_second),
            estimator=estimator, reference=reference,
        )
        REGISTRY[name] = fn
        return fn

    return wrap
