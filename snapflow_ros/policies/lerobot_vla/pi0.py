# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI0 as a SnapFlow policy (``policy_type = "pi0"``).

The prefix is PaliGemma (SigLIP image tokens + language tokens) kept as a KV cache; the state
enters the expert's suffix, so it travels in the context. ``phi_s`` is added to the time half of
``action_time_mlp_in``'s input. PI0 reads its step count from ``num_inference_steps`` or a
``num_steps=`` argument.
"""

from __future__ import annotations

import torch
from torch import nn

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.common import LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.target_time import cache_tensors, prefix_cache


def paligemma_prefix(policy: LeRobotVLAPolicy, processed: dict) -> tuple[dict, torch.Tensor]:
    """PI0 / PI05 prefix: KV cache tensors and pad mask, plus the (unused by PI05) padded state."""
    from lerobot.policies.common.vla_utils import (
        make_att_2d_masks,
        pad_vector,
        prepare_attention_masks_4d,
    )
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    lerobot_policy, model = policy.lerobot_policy, policy.model
    images, image_masks = lerobot_policy._preprocess_images(processed)
    embs, pad_masks, att_masks = model.embed_prefix(
        images, image_masks, processed[OBS_LANGUAGE_TOKENS], processed[OBS_LANGUAGE_ATTENTION_MASK])
    attention = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
    positions = torch.cumsum(pad_masks, dim=1) - 1
    language_model = model.paligemma_with_expert.paligemma.model.language_model
    language_model.config._attn_implementation = "eager"
    _, cache = model.paligemma_with_expert.forward(
        attention_mask=attention, position_ids=positions, past_key_values=None,
        inputs_embeds=[embs, None], use_cache=True)
    keys, values = cache_tensors(cache)
    state = pad_vector(processed["observation.state"], lerobot_policy.config.max_state_dim)
    return {"prefix_pad_masks": pad_masks, "keys": keys, "values": values}, state


class SnapFlowPI0(LeRobotVLAPolicy):
    """PI0 (PaliGemma prefix + Gemma action expert) with SnapFlow's ``phi_s``."""

    policy_type = "pi0"
    lerobot_type = "pi0"

    def _prefix_modules(self) -> list[nn.Module]:
        """PaliGemma: the SigLIP vision tower, projector and Gemma language model."""
        return [self.model.paligemma_with_expert.paligemma]

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """PI0's Euler loop reads ``num_inference_steps`` (unless given ``num_steps=``)."""
        self.lerobot_policy.config.num_inference_steps = int(num_steps)

    def _encode_prefix(self, processed: dict) -> Context:
        context, state = paligemma_prefix(self, processed)
        context["state"] = state
        return context

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.model.denoise_step(
            state=context["state"], prefix_pad_masks=context["prefix_pad_masks"],
            past_key_values=prefix_cache(context["keys"], context["values"]),
            x_t=x, timestep=t)
