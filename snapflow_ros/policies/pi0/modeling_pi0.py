# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI0 as a SnapFlow policy (``policy_type = "pi0"``).

- :class:`SnapFlowPI0Policy`: LeRobot's ``PI0Policy`` with ``phi_s`` added to the time half of
  ``action_time_mlp_in``'s input (the LeRobot policy type ``snapflow_pi0``);
- :class:`SnapFlowPI0`: our backend over it. The prefix is PaliGemma (SigLIP image tokens +
  language tokens) kept as a KV cache; the state enters the expert's suffix, so it travels in
  the context. PI0 reads its step count from ``num_inference_steps`` or a ``num_steps=``
  argument.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.modeling_pi0 import PI0Policy

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import snapflow_construction
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import SnapFlowLoading
from snapflow_ros.policies.lerobot_vla.paligemma import (
    PaliGemmaVLAPolicy,
    paligemma_backbone_dims,
    paligemma_prefix,
)
from snapflow_ros.policies.lerobot_vla.target_time import attach_target_time, prefix_cache
from snapflow_ros.policies.pi0.configuration_pi0 import SnapFlowPI0Config


class SnapFlowPI0Policy(SnapFlowLoading, PI0Policy):
    """LeRobot PI0 with ``phi_s`` added to the time half of ``action_time_mlp_in``'s input."""

    config_class = SnapFlowPI0Config
    name = "snapflow_pi0"

    def __init__(self, config: SnapFlowPI0Config, **kwargs: Any) -> None:
        with snapflow_construction(), paligemma_backbone_dims(modeling_pi0, config):
            super().__init__(config, **kwargs)
        width = self.model.action_in_proj.out_features
        attach_target_time(self, site="action_time_mlp_in", time_dim=width, out_dim=width,
                           steps=lambda: self.config.num_inference_steps)


class SnapFlowPI0(PaliGemmaVLAPolicy):
    """PI0 (PaliGemma prefix + Gemma action expert) with SnapFlow's ``phi_s``."""

    policy_type = "pi0"
    lerobot_policy_class = SnapFlowPI0Policy

    def _encode_prefix(self, processed: dict) -> Context:
        context, state = paligemma_prefix(self, processed)
        context["state"] = state
        return context

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.model.denoise_step(
            state=context["state"], prefix_pad_masks=context["prefix_pad_masks"],
            past_key_values=prefix_cache(context["keys"], context["values"]),
            x_t=x, timestep=t)
