# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Processors of ``snapflow_pi0``: LeRobot's PI0 ones, tokenising with ``tokenizer_name``.

LeRobot looks the factory up by name (``make_snapflow_pi0_pre_post_processors``).
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.pi0 import processor_pi0

from snapflow_ros.policies.lerobot_vla.processor_lerobot_vla import tokenizer_from
from snapflow_ros.policies.pi0.configuration_pi0 import SnapFlowPI0Config


def make_snapflow_pi0_pre_post_processors(
    config: SnapFlowPI0Config,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's PI0 processors, tokenising with ``config.tokenizer_name``."""
    with tokenizer_from(processor_pi0, config.tokenizer_name):
        return processor_pi0.make_pi0_pre_post_processors(config, dataset_stats)
