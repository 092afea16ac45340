# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's SmolVLA as a SnapFlow policy (``policy_type = "smolvla"``).

The prefix is SmolVLA's: images (SigLIP + pixel-shuffle connector), language tokens and the
state, through the first ``num_vlm_layers`` SmolVLM layers, kept as a KV cache. The action
expert cross- and self-attends to it in every ``velocity`` call. ``phi_s`` is added to the time
half of ``action_time_mlp_in``'s input. SmolVLA reads its step count from ``config.num_steps``
only (a ``num_steps=`` argument to its ``predict_action_chunk`` is ignored).
"""

from __future__ import annotations

import torch
from torch import nn

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.common import LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.target_time import cache_tensors, prefix_cache


class SnapFlowSmolVLA(LeRobotVLAPolicy):
    """SmolVLA (SmolVLM prefix + flow-matching action expert) with SnapFlow's ``phi_s``."""

    policy_type = "smolvla"
    lerobot_type = "smolvla"

    def _prefix_modules(self) -> list[nn.Module]:
        """The SmolVLM (vision, connector, text layers) and ``state_proj`` (a prefix token)."""
        return [self.model.vlm_with_expert.vlm, self.model.state_proj]

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """SmolVLA's Euler loop reads ``config.num_steps`` and nothing else."""
        self.lerobot_policy.config.num_steps = int(num_steps)

    def _encode_prefix(self, processed: dict) -> Context:
        from lerobot.policies.common.vla_utils import make_att_2d_masks
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        policy, model = self.lerobot_policy, self.model
        batch = dict(processed)
        batch["observation.state"] = batch["observation.state"].clone()
        batch = policy._prepare_batch(batch)  # pi-aloha state conversion, when configured
        images, image_masks = policy.prepare_images(batch)
        state = policy.prepare_state(batch)
        embs, pad_masks, att_masks = model.embed_prefix(
            images, image_masks, batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK],
            state=state)
        attention = make_att_2d_masks(pad_masks, att_masks)
        positions = torch.cumsum(pad_masks, dim=1) - 1
        _, cache = model.vlm_with_expert.forward(
            attention_mask=attention, position_ids=positions, past_key_values=None,
            inputs_embeds=[embs, None], use_cache=True)
        keys, values = cache_tensors(cache)
        return {"prefix_pad_masks": pad_masks, "keys": keys, "values": values}

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.model.denoise_step(
            prefix_pad_masks=context["prefix_pad_masks"],
            past_key_values=prefix_cache(context["keys"], context["values"]),
            x_t=x, timestep=t)

    def _to_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        if self.lerobot_policy.config.adapt_to_pi_aloha:
            return self.lerobot_policy._pi_aloha_encode_actions_inv(actions.clone())
        return actions

    def _from_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        if self.lerobot_policy.config.adapt_to_pi_aloha:
            return self.lerobot_policy._pi_aloha_encode_actions(actions.clone())
        return actions
