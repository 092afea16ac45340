# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Processors of ``snapflow_pi05``: LeRobot's PI05 ones, tokenising with ``tokenizer_name``.

LeRobot looks the factory up by name (``make_snapflow_pi05_pre_post_processors``).
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.pi05 import processor_pi05

from snapflow_ros.policies.lerobot_vla.processor_lerobot_vla import tokenizer_from
from snapflow_ros.policies.pi05.configuration_pi05 import SnapFlowPI05Config


def make_snapflow_pi05_pre_post_processors(
    config: SnapFlowPI05Config,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's PI05 processors (state in the prompt), tokenising with ``tokenizer_name``."""
    with tokenizer_from(processor_pi05, config.tokenizer_name):
        return processor_pi05.make_pi05_pre_post_processors(config, dataset_stats)
