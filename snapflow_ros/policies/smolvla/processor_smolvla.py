# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Processors of ``snapflow_smolvla``: LeRobot's SmolVLA ones, unchanged.

LeRobot looks the factory up by name (``make_snapflow_smolvla_pre_post_processors``); its
tokenizer comes from the config's ``vlm_model_name``.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

from snapflow_ros.policies.smolvla.configuration_smolvla import SnapFlowSmolVLAConfig


def make_snapflow_smolvla_pre_post_processors(
    config: SnapFlowSmolVLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's SmolVLA processors (normalise, tokenise, device; unnormalise)."""
    return make_smolvla_pre_post_processors(config, dataset_stats)
