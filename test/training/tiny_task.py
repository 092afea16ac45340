# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A tiny learnable task (action chunk = a fixed function of the state) and a tiny policy."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats

CHUNK = 4
ROBOT = RobotInterface(joint_names=("j0", "j1"), camera_keys=("top",), image_height=16,
                       image_width=16)


class ReachDataset(Dataset):
    """Samples whose action chunk is a fixed function of the state: learnable in seconds."""

    def __init__(self, size: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.states = rng.uniform(-1, 1, (size, 2)).astype(np.float32)
        ramp = np.linspace(1.0, 0.4, CHUNK, dtype=np.float32)[None, :, None]
        self.actions = (self.states[:, None, :] * ramp + 0.3).astype(np.float32)
        self.images = rng.integers(0, 256, (size, 3, 16, 16), dtype=np.uint8)
        self.is_pad = np.zeros((size, CHUNK), dtype=bool)
        self.is_pad[::3, -1] = True  # some samples end an episode

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, index: int) -> dict:
        return {"images": {"top": torch.from_numpy(self.images[index])},
                "state": torch.from_numpy(self.states[index]),
                "action": torch.from_numpy(self.actions[index]),
                "action_is_pad": torch.from_numpy(self.is_pad[index]),
                "task": "reach"}

    def stats(self) -> NormalizationStats:
        return NormalizationStats.from_arrays(self.states, self.actions.reshape(-1, 2))


def build_policy(dataset: ReachDataset, seed: int = 0, **changes) -> CompactFlowPolicy:
    torch.manual_seed(seed)
    config = dict(chunk_size=CHUNK, cnn_channels=(8, 8), hidden_dim=32, num_layers=2,
                  num_heads=2, num_keypoints=4, time_encoding_dim=16, target_time_hidden_dim=16,
                  random_shift_pixels=2, dropout=0.1)
    config.update(changes)
    return CompactFlowPolicy(CompactPolicyConfig(**config), ROBOT, dataset.stats())
