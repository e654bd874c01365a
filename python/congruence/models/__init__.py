"""Activations of torch modules: forward-hook capture with an explicit conv policy.

:func:`list_layers`, :class:`ActivationRecorder` and :func:`capture_activations` (see
:mod:`congruence.models.capture`); :func:`congruence.compare` streams batches captured this way into
one exact state per layer pair. Needs PyTorch.
"""

from .capture import SPATIAL_POLICIES, ActivationRecorder, capture_activations, list_layers

__all__ = ["ActivationRecorder", "SPATIAL_POLICIES", "capture_activations", "list_layers"]
