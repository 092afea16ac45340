# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI05 as a SnapFlow policy (``policy_type = "pi05"``).

The prefix is PaliGemma over images and a prompt that carries the discretised state (LeRobot's
PI05 preprocessor writes it). The time enters every expert layer through adaRMS conditioning;
``phi_s`` is added to that conditioning vector. PI05 reads its step count from
``num_inference_steps`` or a ``num_steps=`` argument.
"""

from __future__ import annotations

import torch
from torch import nn

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.common import LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.pi0 import paligemma_prefix
from snapflow_ros.policies.lerobot_vla.target_time import prefix_cache


class SnapFlowPI05(LeRobotVLAPolicy):
    """PI05 (PaliGemma prefix, adaRMS-conditioned Gemma expert) with SnapFlow's ``phi_s``."""

    policy_type = "pi05"
    lerobot_type = "pi05"

    def _prefix_modules(self) -> list[nn.Module]:
        """PaliGemma: the SigLIP vision tower, projector and Gemma language model."""
        return [self.model.paligemma_with_expert.paligemma]

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """PI05's Euler loop reads ``num_inference_steps`` (unless given ``num_steps=``)."""
        self.lerobot_policy.config.num_inference_steps = int(num_steps)

    def _encode_prefix(self, processed: dict) -> Context:
        context, _ = paligemma_prefix(self, processed)
        return context

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.model.denoise_step(
            prefix_pad_masks=context["prefix_pad_masks"],
            past_key_values=prefix_cache(context["keys"], context["values"]),
            x_t=x, timestep=t)
