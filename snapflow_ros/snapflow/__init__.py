# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SnapFlow core: the target-time embedding, the training objectives and the samplers.

- :mod:`.time_embedding`: :func:`sinusoidal_time_encoding` and ``phi_s``
  (:class:`TargetTimeEmbedding`), zero at initialisation.
- :mod:`.objective`: :class:`SnapFlowConfig`, :func:`flow_matching_loss` (teacher stage) and
  :func:`snapflow_loss` (self-distillation stage).
- :mod:`.sampler`: :func:`sample_noise`, :func:`sample_chunk` (k-step, ``"jump"`` or ``"euler"``)
  and :func:`predict_action_chunk` (encode once, sample, un-normalise).
"""

from snapflow_ros.snapflow.objective import (
    SnapFlowConfig,
    encode_for_training,
    flow_matching_loss,
    sample_time,
    snapflow_loss,
)
from snapflow_ros.snapflow.sampler import (
    SAMPLER_MODES,
    predict_action_chunk,
    sample_chunk,
    sample_noise,
)
from snapflow_ros.snapflow.time_embedding import TargetTimeEmbedding, sinusoidal_time_encoding

__all__ = [
    "SAMPLER_MODES",
    "SnapFlowConfig",
    "TargetTimeEmbedding",
    "encode_for_training",
    "flow_matching_loss",
    "predict_action_chunk",
    "sample_chunk",
    "sample_noise",
    "sample_time",
    "sinusoidal_time_encoding",
    "snapflow_loss",
]
