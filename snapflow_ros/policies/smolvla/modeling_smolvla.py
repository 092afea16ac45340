# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's SmolVLA as a SnapFlow policy (``policy_type = "smolvla"``).

- :class:`SnapFlowSmolVLAPolicy`: LeRobot's ``SmolVLAPolicy`` with ``phi_s`` held at
  ``model.target_time_embedding`` and added to the time half of ``action_time_mlp_in``'s input
  (the LeRobot policy type ``snapflow_smolvla``; everything else, ``select_action`` included,
  is LeRobot's);
- :class:`SnapFlowSmolVLA`: our backend over it. The prefix is SmolVLA's: images (SigLIP +
  pixel-shuffle connector), language tokens and the state, through the first
  ``num_vlm_layers`` SmolVLM layers, kept as a KV cache. The action expert cross- and
  self-attends to it in every ``velocity`` call. SmolVLA reads its step count from
  ``config.num_steps`` only (a ``num_steps=`` argument to its ``predict_action_chunk`` is
  ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from torch import nn

from snapflow_ros.policies.base import Context
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import (
    LeRobotVLAConfig,
    snapflow_construction,
)
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import SnapFlowLoading
from snapflow_ros.policies.lerobot_vla.modeling_lerobot_vla import LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.target_time import (
    attach_target_time,
    cache_tensors,
    prefix_cache,
)
from snapflow_ros.policies.smolvla.configuration_smolvla import SnapFlowSmolVLAConfig
from snapflow_ros.policies.smolvla.fast_inference_smolvla import install_sync_free_smolvlm


class SnapFlowSmolVLAPolicy(SnapFlowLoading, SmolVLAPolicy):
    """LeRobot SmolVLA with ``phi_s`` added to the time half of ``action_time_mlp_in``'s input."""

    config_class = SnapFlowSmolVLAConfig
    name = "snapflow_smolvla"

    def __init__(self, config: SnapFlowSmolVLAConfig, **kwargs: Any) -> None:
        with snapflow_construction():
            super().__init__(config, **kwargs)
        width = self.model.vlm_with_expert.expert_hidden_size
        attach_target_time(self, site="action_time_mlp_in", time_dim=width, out_dim=width,
                           steps=lambda: self.config.num_steps)


class SnapFlowSmolVLA(LeRobotVLAPolicy):
    """SmolVLA (SmolVLM prefix + flow-matching action expert) with SnapFlow's ``phi_s``."""

    policy_type = "smolvla"
    lerobot_policy_class = SnapFlowSmolVLAPolicy
    offline_fields = {"load_vlm_weights": False}

    @classmethod
    def lerobot_config_changes(cls, config: LeRobotVLAConfig) -> dict[str, Any]:
        """Step count, KV cache, image size and the SmolVLM folder, as SmolVLA names them."""
        changes: dict[str, Any] = {"num_steps": config.num_steps, "use_cache": True}
        if config.image_size:
            changes["resize_imgs_with_padding"] = (config.image_size, config.image_size)
        if config.vlm_model_name:
            changes["vlm_model_name"] = config.vlm_model_name
        return changes

    @classmethod
    def cast_weights(cls, lerobot_policy: Any, dtype: str) -> None:
        """SmolVLA does not cast itself: the VLM and expert are cast here (bfloat16)."""
        if dtype == "bfloat16":
            lerobot_policy.model.vlm_with_expert.to(torch.bfloat16)

    def install_capture_shims(self) -> Callable[[], None]:
        """SmolVLM's vision code without host syncs (see ``fast_inference_smolvla``)."""
        return install_sync_free_smolvlm(self)

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
