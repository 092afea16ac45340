# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tiny compact-policy checkpoints for tests of everything downstream of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import save_checkpoint
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats

JOINTS = ("joint_a", "joint_b", "joint_c")


def write_tiny_checkpoint(run_dir: Path, *, joint_names=JOINTS, camera_keys=("top",),
                          image_size: int = 32, chunk_size: int = 10, action_mean=0.0,
                          action_std: float = 0.01, stage: str = "teacher", seed: int = 0,
                          environment_state_names=()) -> Path:
    """An untrained tiny compact policy whose actions stay within ~3 std of ``action_mean``."""
    torch.manual_seed(seed)
    robot = RobotInterface(joint_names=tuple(joint_names), camera_keys=tuple(camera_keys),
                           image_height=image_size, image_width=image_size,
                           environment_state_names=tuple(environment_state_names))
    config = CompactPolicyConfig(chunk_size=chunk_size, cnn_channels=(8, 16), hidden_dim=32,
                                 num_layers=1, num_heads=2, time_encoding_dim=16,
                                 target_time_hidden_dim=16, num_keypoints=4,
                                 random_shift_pixels=0)
    dims = len(joint_names)
    environment = {}
    if environment_state_names:
        environment = {"environment_state_mean": np.zeros(len(environment_state_names)),
                       "environment_state_std": np.ones(len(environment_state_names))}
    stats = NormalizationStats(np.zeros(dims), np.ones(dims), np.full(dims, action_mean),
                               np.full(dims, action_std), **environment)
    policy = CompactFlowPolicy(config, robot, stats)
    return save_checkpoint(policy, run_dir, stage=stage, step=0, command="test fixture")
