# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A tiny compact checkpoint with random weights for the export tests, and its dimensions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

JOINTS = ("shoulder", "elbow", "gripper")
CAMERAS = ("top", "wrist")
ENVIRONMENT = ("cube/x", "cube/y")
IMAGE_SIZE = 24
CHUNK = 6


def write_random_checkpoint(run_dir: Path, seed: int = 0) -> Path:
    """A tiny compact policy (two cameras, environment state) whose every weight is random.

    Untrained, the adaLN-zero model outputs zero velocity; random weights make every layer
    count in the comparisons.
    """
    import torch

    from snapflow_ros.policies.base import RobotInterface
    from snapflow_ros.policies.checkpoint import save_checkpoint
    from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
    from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
    from snapflow_ros.policies.normalization import NormalizationStats

    torch.manual_seed(seed)
    robot = RobotInterface(joint_names=JOINTS, camera_keys=CAMERAS, image_height=IMAGE_SIZE,
                           image_width=IMAGE_SIZE, environment_state_names=ENVIRONMENT)
    config = CompactPolicyConfig(chunk_size=CHUNK, cnn_channels=(8, 16), hidden_dim=32,
                                 num_layers=2, num_heads=2, time_encoding_dim=16,
                                 target_time_hidden_dim=16, num_keypoints=4,
                                 random_shift_pixels=0)
    dims = len(JOINTS)
    stats = NormalizationStats(
        np.linspace(-0.5, 0.5, dims), np.full(dims, 0.3), np.array([0.1, -0.2, 0.04]),
        np.array([0.2, 0.1, 0.02]), action_min=np.array([-0.5, -0.5, 0.0]),
        action_max=np.array([0.7, 0.1, 0.08]), environment_state_mean=np.zeros(2),
        environment_state_std=np.full(2, 0.05))
    policy = CompactFlowPolicy(config, robot, stats)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return save_checkpoint(policy, run_dir, stage="snapflow", step=1, command="test fixture")
