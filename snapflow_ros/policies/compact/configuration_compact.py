# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Configuration of the compact flow-matching policy (CNN encoder + small transformer expert).

Image size, joint names and camera keys are not part of this config: they come from the
:class:`~snapflow_ros.policies.base.RobotInterface` the policy is built for.
"""

from __future__ import annotations

import dataclasses

from snapflow_ros.config_fields import ConfigError, check_config, param


@dataclasses.dataclass(frozen=True)
class CompactPolicyConfig:
    """Architecture and regularisation of :class:`CompactFlowPolicy`."""

    chunk_size: int = param(50, "Actions predicted per chunk (H), one per control step.",
                            low=1, high=1000)
    cnn_channels: tuple[int, ...] = param(
        (32, 64, 96, 128), "Output channels of each stride-2 conv stage of the image encoder.",
        low=4, high=1024)
    cnn_stem_stride: int = param(
        2, "Stride of the first conv (2: fine detail; 4: cheaper on large images).", low=1, high=8)
    image_tokens: str = param(
        "keypoints", "How a feature map becomes context tokens: 'keypoints' (learned spatial "
        "softmax: attended feature + expected x, y per keypoint) or 'grid' (average-pooled cells).",
        choices=("keypoints", "grid"))
    num_keypoints: int = param(16, "Keypoint tokens per camera (image_tokens='keypoints').",
                               low=1, high=256)
    grid_size: int = param(4, "Cells per side (image_tokens='grid'): grid_size^2 tokens.",
                           low=1, high=32)
    random_shift_pixels: int = param(
        4, "Training-only augmentation: random image shift of up to this many pixels "
        "(replicate-pad then crop). 0 disables.", low=0, high=64)
    color_jitter: float = param(
        0.0, "Training-only augmentation: per-sample brightness and contrast factors drawn from "
        "[1 - color_jitter, 1 + color_jitter] (after the shift). 0 disables.", low=0.0, high=1.0)
    hidden_dim: int = param(128, "Width of the action expert and of every context token.",
                            low=8, high=4096)
    num_layers: int = param(4, "Transformer blocks of the action expert.", low=1, high=48)
    num_heads: int = param(4, "Attention heads (must divide hidden_dim).", low=1, high=64)
    mlp_ratio: float = param(4.0, "Expert MLP width as a multiple of hidden_dim.",
                             low=0.5, high=16.0)
    dropout: float = param(0.1, "Dropout in the expert (attention output and MLP); training only.",
                           low=0.0, high=0.9)
    time_encoding_dim: int = param(
        64, "Size of the sinusoidal encoding of t and s (even).", low=2, high=4096)
    target_time_hidden_dim: int = param(
        128, "Hidden width of phi_s, SnapFlow's target-time MLP.", low=1, high=4096)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.cnn_channels:
            raise ConfigError("cnn_channels must list at least one conv stage")
        if self.hidden_dim % self.num_heads:
            raise ConfigError(
                f"num_heads={self.num_heads} must divide hidden_dim={self.hidden_dim}")
        if self.time_encoding_dim % 2:
            raise ConfigError(f"time_encoding_dim={self.time_encoding_dim} must be even")

    def feature_stride(self) -> int:
        """Total downsampling factor of the conv encoder (pixels per feature-map cell)."""
        return self.cnn_stem_stride * 2 ** (len(self.cnn_channels) - 1)
