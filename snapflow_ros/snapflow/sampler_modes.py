# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The k-step sampler modes, without torch, so that configs can name them where torch is absent."""

# The two ways :func:`snapflow_ros.snapflow.sampler.predict_action_chunk` integrates k > 1 steps
# with a SnapFlow model: chained (s, t) jumps, or plain Euler with the local velocity (s = t).
SAMPLER_MODES = ("jump", "euler")
