# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI05 as a SnapFlow policy (``policy_type = "pi05"``).

- :class:`SnapFlowPI05Policy`: LeRobot's ``PI05Policy`` with ``phi_s`` added to the adaRMS
  conditioning of every expert layer (the LeRobot policy type ``snapflow_pi05``);
- :class:`SnapFlowPI05`: our backend over it. The prefix is PaliGemma over images and a prompt
  that carries the discretised state (LeRobot's PI05 preprocessor writes it). The time enters
  every expert layer through adaRMS conditioning; ``phi_s`` is added to that conditioning
  vector. PI05 reads its step count from ``num_inference_steps`` or a ``num_steps=`` argument.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.modeling_pi05 import PI05Policy

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import snapflow_construction
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import SnapFlowLoading
from snapflow_ros.policies.lerobot_vla.paligemma import (
    PaliGemmaVLAPolicy,
    paligemma_backbone_dims,
    paligemma_prefix,
)
from snapflow_ros.policies.lerobot_vla.target_time import attach_target_time, prefix_cache
from snapflow_ros.policies.pi05.configuration_pi05 import SnapFlowPI05Config


class SnapFlowPI05Policy(SnapFlowLoading, PI05Policy):
    """LeRobot PI05 with ``phi_s`` added to the adaRMS conditioning of every expert layer."""

    config_class = SnapFlowPI05Config
    name = "snapflow_pi05"

    def __init__(self, config: SnapFlowPI05Config, **kwargs: Any) -> None:
        with snapflow_construction(), paligemma_backbone_dims(modeling_pi05, config):
            super().__init__(config, **kwargs)
        width = self.model.action_in_proj.out_features
        attach_target_time(self, site="adarms_cond", time_dim=width,
                           out_dim=self.model.time_mlp_out.out_features,
                           steps=lambda: self.config.num_inference_steps)


class SnapFlowPI05(PaliGemmaVLAPolicy):
    """PI05 (PaliGemma prefix, adaRMS-conditioned Gemma expert) with SnapFlow's ``phi_s``."""

    policy_type = "pi05"
    lerobot_policy_class = SnapFlowPI05Policy

    def _encode_prefix(self, processed: dict) -> Context:
        context, _ = paligemma_prefix(self, processed)
        return context

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.model.denoise_step(
            prefix_pad_masks=context["prefix_pad_masks"],
            past_key_values=prefix_cache(context["keys"], context["values"]),
            x_t=x, timestep=t)
