# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SnapFlow core: the target-time embedding, the training objectives and the samplers.

- :mod:`.time_embedding`: :func:`sinusoidal_time_encoding` and ``phi_s``
  (:class:`TargetTimeEmbedding`), zero at initialisation.
- :mod:`.objective`: :class:`SnapFlowConfig`, :func:`flow_matching_loss` (teacher stage) and
  :func:`snapflow_loss` (self-distillation stage) with its :func:`consistency_target`.
- :mod:`.sampler`: :func:`sample_noise`, :func:`sample_chunk` (k-step, ``"jump"`` or ``"euler"``)
  and :func:`predict_action_chunk` (encode once, sample, un-normalise).
"""

import importlib
from typing import Any

# Loaded on first use, so that the torch-free parts (the sampler modes) import without torch.
_EXPORTS = {
    "SAMPLER_MODES": "sampler_modes",
    "SnapFlowConfig": "objective",
    "TargetTimeEmbedding": "time_embedding",
    "action_dimension_mask": "objective",
    "consistency_target": "objective",
    "encode_for_training": "objective",
    "evaluation_mode": "objective",
    "flow_matching_loss": "objective",
    "predict_action_chunk": "sampler",
    "sample_chunk": "sampler",
    "sample_noise": "sampler",
    "sample_time": "objective",
    "sinusoidal_time_encoding": "time_embedding",
    "snapflow_loss": "objective",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The package's public names, each imported from its module when first asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
