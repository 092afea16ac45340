# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What PI0 and PI05 share: LeRobot's PaliGemma prefix and a Gemma action expert.

- :func:`paligemma_backbone_dims`: builds PI0 / PI05 at other Gemma / SigLIP sizes than the
  ones LeRobot hard-codes (tiny ones for tests, offline);
- :func:`paligemma_prefix`: the prefix both run (SigLIP image tokens + language tokens through
  PaliGemma, kept as a KV cache);
- :class:`PaliGemmaVLAPolicy`: the backend base of ``pi0`` and ``pi05`` (prefix modules, step
  count, the LeRobot config fields our options set).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from torch import nn

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import LeRobotVLAConfig
from snapflow_ros.policies.lerobot_vla.modeling_lerobot_vla import LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.target_time import cache_tensors


@contextlib.contextmanager
def paligemma_backbone_dims(module: ModuleType, config: Any) -> Iterator[None]:
    """While LeRobot builds PI0 / PI05 in ``module``, use ``config.backbone_dims`` for its sizes.

    LeRobot hard-codes Gemma 2B / 300M and a SigLIP So400m; ``backbone_dims`` (``{"vlm": {width,
    depth, mlp_dim, num_kv_heads, head_dim}, "expert": {...}, "vision": {hidden_size,
    intermediate_size, num_hidden_layers, num_attention_heads, patch_size}, "vocab_size": n}``)
    replaces them. The attention keeps LeRobot's hard-coded 8 heads. Not thread-safe: build one
    such model at a time.
    """
    dims = config.backbone_dims
    if not dims:
        yield
        return
    for role in ("vlm", "expert"):
        if dims[role]["head_dim"] != dims["vlm"]["head_dim"] or (
                dims[role]["num_kv_heads"] != dims["vlm"]["num_kv_heads"]):
            raise ConfigError("backbone_dims: the expert attends to the VLM's KV cache, so "
                              "head_dim and num_kv_heads must match")
    if dims["vlm"]["depth"] != dims["expert"]["depth"]:
        raise ConfigError("backbone_dims: the VLM and expert need the same depth")
    variants = {config.paligemma_variant: dims["vlm"], config.action_expert_variant: dims["expert"]}
    if config.paligemma_variant == config.action_expert_variant and dims["vlm"] != dims["expert"]:
        raise ConfigError("backbone_dims with different VLM / expert sizes need different "
                          "paligemma_variant and action_expert_variant names")
    vocab = int(dims.get("vocab_size", 257152))
    vision = dims.get("vision")
    original_config = module.get_gemma_config
    original_vlm = module.PaliGemmaForConditionalGenerationWithPiGemma
    original_expert = module.PiGemmaForCausalLM

    def gemma_config(variant: str) -> Any:
        size = variants[variant]
        return module.GemmaConfig(width=size["width"], depth=size["depth"],
                                  mlp_dim=size["mlp_dim"], num_heads=8,
                                  num_kv_heads=size["num_kv_heads"], head_dim=size["head_dim"])

    def build_vlm(config: Any) -> Any:
        config.text_config.vocab_size = vocab
        config.image_token_index = vocab
        if vision:
            for key, value in vision.items():
                setattr(config.vision_config, key, value)
        config.vision_config.projection_dim = config.text_config.hidden_size
        return original_vlm(config=config)

    def build_expert(config: Any) -> Any:
        config.vocab_size = vocab
        return original_expert(config=config)

    module.get_gemma_config = gemma_config
    module.PaliGemmaForConditionalGenerationWithPiGemma = build_vlm
    module.PiGemmaForCausalLM = build_expert
    try:
        yield
    finally:
        module.get_gemma_config = original_config
        module.PaliGemmaForConditionalGenerationWithPiGemma = original_vlm
        module.PiGemmaForCausalLM = original_expert


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


class PaliGemmaVLAPolicy(LeRobotVLAPolicy):
    """The part of the PI0 / PI05 backends that is the same: PaliGemma prefix, Gemma expert."""

    @classmethod
    def lerobot_config_changes(cls, config: LeRobotVLAConfig) -> dict[str, Any]:
        """Step count, dtype, image resolution and tokenizer, as PI0 / PI05 name them."""
        # Our gradient checkpointing replaces LeRobot's: its per-layer one drops the KV cache
        # in the expert-only calls velocity() makes.
        changes: dict[str, Any] = dict(num_inference_steps=config.num_steps, dtype=config.dtype,
                                       gradient_checkpointing=False)
        if config.image_size:
            changes["image_resolution"] = (config.image_size, config.image_size)
        if config.tokenizer_path:
            changes["tokenizer_name"] = config.tokenizer_path
        return changes

    def _prefix_modules(self) -> list[nn.Module]:
        """PaliGemma: the SigLIP vision tower, projector and Gemma language model."""
        return [self.model.paligemma_with_expert.paligemma]

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """PI0 / PI05's Euler loop reads ``num_inference_steps`` (unless given ``num_steps=``)."""
        self.lerobot_policy.config.num_inference_steps = int(num_steps)
