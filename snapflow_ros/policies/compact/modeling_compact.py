# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The compact flow-matching policy: a small CNN per camera and a small transformer expert.

It is built to train from scratch on a few dozen demonstrations on a CPU and to run one
denoising step in a few milliseconds:

- prefix (:meth:`CompactFlowPolicy.encode`, run once per observation): each camera's uint8 image
  goes through its own stride-2 conv stack; the feature map becomes a few tokens (learned spatial
  softmax keypoints, or average-pooled grid cells); the normalised state becomes one more token,
  and so does the normalised environment state (object poses) when the robot interface has one.
- action expert (:meth:`CompactFlowPolicy.velocity`, run once per denoising step): the H noisy
  action tokens attend to each other and cross-attend to the context tokens. The time ``t``
  (sinusoidal encoding -> MLP) plus SnapFlow's ``phi_s(s)`` (``target_time_embedding``) condition
  every block through adaptive layer norm (shift, scale and gate, as in DiT).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from snapflow_ros.config_fields import ConfigError, config_from_dict, config_to_dict
from snapflow_ros.policies.base import Context, FlowMatchingPolicy, RobotInterface
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.snapflow.time_embedding import TargetTimeEmbedding, sinusoidal_time_encoding


def _group_count(channels: int) -> int:
    return math.gcd(8, channels)


def _random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of ``(B, C, h, w)`` by up to ``pad`` pixels (replicate border)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2)).tolist()
    return torch.stack([padded[i, :, dy:dy + height, dx:dx + width]
                        for i, (dy, dx) in enumerate(offsets)])


def _color_jitter(images: torch.Tensor, amplitude: float) -> torch.Tensor:
    """Scale brightness and contrast of each image of ``(B, C, h, w)`` in [0, 1] by a factor.

    Each factor is drawn per image from ``[1 - amplitude, 1 + amplitude]`` (on the CPU RNG, as
    the shift, so a run reproduces on any device); contrast is taken about the image's mean.
    """
    factors = 1.0 + amplitude * (2.0 * torch.rand(2, images.shape[0], 1, 1, 1) - 1.0)
    brightness, contrast = factors.to(images.device, images.dtype)
    images = images * brightness
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * contrast + mean).clamp(0.0, 1.0)


class CameraEncoder(nn.Module):
    """One camera's conv stack: image ``(B, 3, h, w)`` in [0, 1] -> tokens ``(B, N, hidden)``."""

    def __init__(self, config: CompactPolicyConfig, image_height: int, image_width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for index, channels in enumerate(config.cnn_channels):
            stride = config.cnn_stem_stride if index == 0 else 2
            # A wider kernel on the 3-channel stem costs little and widens the receptive field.
            kernel = 2 * stride + 1 if index == 0 else 3
            layers += [
                nn.Conv2d(in_channels, channels, kernel, stride=stride, padding=kernel // 2),
                nn.GroupNorm(_group_count(channels), channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = channels
        self.backbone = nn.Sequential(*layers)
        with torch.no_grad():
            probe = self.backbone(torch.zeros(1, 3, image_height, image_width))
        _, _, feat_h, feat_w = probe.shape
        self.feature_channels = in_channels
        self.image_tokens = config.image_tokens
        hidden = config.hidden_dim
        if config.image_tokens == "keypoints":
            self.num_tokens = config.num_keypoints
            self.attention_logits = nn.Conv2d(in_channels, config.num_keypoints, 1)
            ys = torch.linspace(-1.0, 1.0, feat_h)
            xs = torch.linspace(-1.0, 1.0, feat_w)
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            self.register_buffer(
                "pixel_coords", torch.stack([grid_x, grid_y], -1).reshape(-1, 2), persistent=False)
            self.token_proj = nn.Linear(in_channels + 2, hidden)
        else:
            self.num_tokens = config.grid_size ** 2
            self.grid_size = config.grid_size
            self.token_proj = nn.Linear(in_channels, hidden)
        self.token_embedding = nn.Parameter(torch.randn(self.num_tokens, hidden) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, hidden)`` for images ``(B, 3, h, w)`` scaled to [0, 1]."""
        features = self.backbone(images - 0.5)
        if self.image_tokens == "keypoints":
            weights = self.attention_logits(features).flatten(2).softmax(dim=-1)  # (B, K, hw)
            flat = features.flatten(2).transpose(1, 2)  # (B, hw, C)
            attended = torch.bmm(weights, flat)
            coords = weights @ self.pixel_coords  # expected (x, y) of each keypoint
            tokens = self.token_proj(torch.cat([attended, coords], dim=-1))
        else:
            pooled = F.adaptive_avg_pool2d(features, self.grid_size)
            tokens = self.token_proj(pooled.flatten(2).transpose(1, 2))
        return tokens + self.token_embedding


class ObservationEncoder(nn.Module):
    """The prefix: cameras, state and environment state -> context tokens ``(B, N, hidden)``."""

    def __init__(self, config: CompactPolicyConfig, robot: RobotInterface) -> None:
        super().__init__()
        self.camera_keys = tuple(robot.camera_keys)
        self.image_size = (robot.image_height, robot.image_width)
        self.random_shift_pixels = config.random_shift_pixels
        self.color_jitter = config.color_jitter
        self.cameras = nn.ModuleList(
            CameraEncoder(config, robot.image_height, robot.image_width)
            for _ in self.camera_keys)
        self.camera_embedding = nn.Parameter(
            torch.randn(len(self.camera_keys), config.hidden_dim) * 0.02)
        self.state_proj = nn.Linear(max(len(robot.joint_names), 1), config.hidden_dim)
        self.has_state = bool(robot.joint_names)
        # Only built when there is an environment state, so older checkpoints keep their keys.
        self.environment_state_proj = (
            nn.Linear(len(robot.environment_state_names), config.hidden_dim)
            if robot.environment_state_names else None)
        self.norm = nn.LayerNorm(config.hidden_dim)

    def _prepare_image(self, key: str, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"images[{key!r}] must have shape (B, 3, h, w), "
                             f"got {tuple(image.shape)}")
        image = image.to(device, non_blocking=True)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        if tuple(image.shape[-2:]) != self.image_size:
            image = F.interpolate(image, size=self.image_size, mode="bilinear",
                                  align_corners=False, antialias=True)
        if self.training and self.random_shift_pixels > 0:
            image = _random_shift(image, self.random_shift_pixels)
        if self.training and self.color_jitter > 0:
            image = _color_jitter(image, self.color_jitter)
        return image

    def forward(self, images: dict, normalized_state: torch.Tensor,
                normalized_environment_state: torch.Tensor | None = None) -> torch.Tensor:
        """Context tokens ``(B, N, hidden)`` for images, state ``(B, S)``, env. state ``(B, E)``.

        The environment state is required when the robot interface has one.
        """
        tokens = []
        device = normalized_state.device
        for index, (key, encoder) in enumerate(zip(self.camera_keys, self.cameras)):
            if key not in images:
                raise KeyError(f"batch has no image for camera {key!r} "
                               f"(cameras in batch: {sorted(images)})")
            image = self._prepare_image(key, images[key], device)
            tokens.append(encoder(image) + self.camera_embedding[index])
        if self.has_state:
            tokens.append(self.state_proj(normalized_state).unsqueeze(1))
        if self.environment_state_proj is not None:
            tokens.append(self.environment_state_proj(normalized_environment_state).unsqueeze(1))
        return self.norm(torch.cat(tokens, dim=1))


class Attention(nn.Module):
    """Multi-head attention of query tokens over key/value tokens (both ``(B, N, hidden)``)."""

    def __init__(self, hidden: int, num_heads: int, dropout: float, *, cross: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.cross = cross
        if cross:
            self.q = nn.Linear(hidden, hidden)
            self.kv = nn.Linear(hidden, 2 * hidden)
        else:
            self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        return x.view(batch, tokens, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Attention output ``(B, N_x, hidden)``; ``context`` is used by cross-attention only."""
        if self.cross:
            q = self.q(x)
            k, v = self.kv(context).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v),
            dropout_p=self.dropout if self.training else 0.0)
        batch, _, tokens, _ = attended.shape
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, -1))


class ExpertBlock(nn.Module):
    """Self-attention, cross-attention to the context and an MLP; adaLN-conditioned on time."""

    def __init__(self, config: CompactPolicyConfig) -> None:
        super().__init__()
        hidden = config.hidden_dim
        self.norm_self = nn.LayerNorm(hidden, elementwise_affine=False)
        self.self_attention = Attention(hidden, config.num_heads, config.dropout, cross=False)
        self.norm_cross = nn.LayerNorm(hidden)
        self.cross_attention = Attention(hidden, config.num_heads, config.dropout, cross=True)
        self.norm_mlp = nn.LayerNorm(hidden, elementwise_affine=False)
        mlp_width = int(round(hidden * config.mlp_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_width), nn.GELU(approximate="tanh"),
            nn.Dropout(config.dropout), nn.Linear(mlp_width, hidden))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                modulation: torch.Tensor) -> torch.Tensor:
        """Update action tokens ``(B, H, hidden)``; ``modulation`` is ``(B, 6, hidden)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.unbind(dim=1)
        h = self.norm_self(x) * (1 + scale1[:, None]) + shift1[:, None]
        x = x + gate1[:, None] * self.dropout(self.self_attention(h))
        x = x + self.dropout(self.cross_attention(self.norm_cross(x), context))
        h = self.norm_mlp(x) * (1 + scale2[:, None]) + shift2[:, None]
        return x + gate2[:, None] * self.mlp(h)


class CompactFlowPolicy(FlowMatchingPolicy):
    """Small from-scratch flow-matching policy with SnapFlow's target-time embedding ``phi_s``.

    Construct with a :class:`CompactPolicyConfig`, the :class:`RobotInterface` it serves and the
    :class:`NormalizationStats` of its training data (stored as buffers, so they travel in the
    weights; ``None`` means identity until a checkpoint's weights are loaded).
    """

    policy_type = "compact"

    def __init__(self, config: CompactPolicyConfig, robot: RobotInterface,
                 stats: NormalizationStats | None = None) -> None:
        super().__init__()
        if not robot.action_names:
            raise ConfigError("the compact policy needs at least one action name")
        if not robot.camera_keys:
            raise ConfigError("the compact policy needs at least one camera")
        self.config = config
        self.robot = robot
        self.chunk_size = config.chunk_size
        self.action_dim = len(robot.action_names)
        state_dim = len(robot.joint_names)
        environment_dim = len(robot.environment_state_names)
        if stats is None:
            stats = NormalizationStats.identity(state_dim, self.action_dim, environment_dim)
        if (stats.state_dim, stats.action_dim, stats.environment_state_dim) != (
                state_dim, self.action_dim, environment_dim):
            raise ConfigError(
                f"normalisation stats are for {stats.state_dim} state / {stats.action_dim} "
                f"action / {stats.environment_state_dim} environment-state dims, the robot has "
                f"{state_dim} joints / {self.action_dim} actions / {environment_dim} "
                "environment-state values")
        for name in self._stat_buffers():
            self.register_buffer(name, torch.as_tensor(getattr(stats, name).copy()))

        hidden = config.hidden_dim
        self.observation_encoder = ObservationEncoder(config, robot)
        self.time_embedding = nn.Sequential(
            nn.Linear(config.time_encoding_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.target_time_embedding = TargetTimeEmbedding(
            config.time_encoding_dim, hidden, config.target_time_hidden_dim)
        self.action_in = nn.Linear(self.action_dim, hidden)
        self.action_position = nn.Parameter(torch.randn(config.chunk_size, hidden) * 0.02)
        self.blocks = nn.ModuleList(ExpertBlock(config) for _ in range(config.num_layers))
        # One linear for all blocks' shift/scale/gate plus the output layer's shift/scale.
        self.modulation = nn.Linear(hidden, (6 * config.num_layers + 2) * hidden)
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False)
        self.action_out = nn.Linear(hidden, self.action_dim)
        # adaLN-Zero: every residual branch and the output start at zero, which keeps early
        # training stable; the time conditioning learns to open them.
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        nn.init.zeros_(self.action_out.weight)
        nn.init.zeros_(self.action_out.bias)

    # -- construction from / to checkpoints ------------------------------------------------------

    def policy_config_dict(self) -> dict:
        """The policy config as a JSON-safe mapping (stored in ``config.json``)."""
        return config_to_dict(self.config)

    @classmethod
    def from_policy_config(cls, config_dict: dict, robot: RobotInterface,
                           stats: NormalizationStats | None, *,
                           checkpoint_dir: str | Path | None = None) -> CompactFlowPolicy:
        """Build an untrained policy from :meth:`policy_config_dict` output.

        ``checkpoint_dir`` is not needed: a compact checkpoint keeps everything in its weights.
        """
        return cls(config_from_dict(CompactPolicyConfig, config_dict), robot, stats)

    def _stat_buffers(self) -> tuple[str, ...]:
        names = ("state_mean", "state_std", "action_mean", "action_std")
        if self.robot.environment_state_names:
            names += ("environment_state_mean", "environment_state_std")
        return names

    def normalization_stats(self) -> NormalizationStats:
        """The normalisation statistics held in the policy's buffers."""
        return NormalizationStats(**{n: getattr(self, n).detach().cpu().numpy()
                                     for n in self._stat_buffers()})

    # -- FlowMatchingPolicy ----------------------------------------------------------------------

    def prefix_parameters(self) -> list[nn.Parameter]:
        """The observation encoder (CNNs, state projection): frozen in the snapflow stage."""
        return list(self.observation_encoder.parameters())

    def encode(self, batch: dict) -> Context:
        """Encode images, state and environment state once: ``{"tokens": (B, N, hidden)}``."""
        state = batch.get("state")
        if state is None:
            raise KeyError("batch has no 'state'")
        state = state.to(self.state_mean.device, torch.float32)
        if state.ndim != 2 or state.shape[1] != self.state_mean.shape[0]:
            raise ValueError(f"state must have shape (B, {self.state_mean.shape[0]}), "
                             f"got {tuple(state.shape)}")
        normalized = (state - self.state_mean) / self.state_std
        environment = None
        if self.robot.environment_state_names:
            environment = batch.get("environment_state")
            size = self.environment_state_mean.shape[0]
            if environment is None:
                raise KeyError(f"batch has no 'environment_state' (the policy reads {size} "
                               f"values: {list(self.robot.environment_state_names)})")
            environment = environment.to(state.device, torch.float32)
            if environment.shape != (state.shape[0], size):
                raise ValueError(f"environment_state must have shape ({state.shape[0]}, "
                                 f"{size}), got {tuple(environment.shape)}")
            environment = (environment - self.environment_state_mean) / self.environment_state_std
        return {"tokens": self.observation_encoder(batch.get("images", {}), normalized,
                                                   environment)}

    def velocity(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor,
                 context: Context) -> torch.Tensor:
        """Average velocity ``F(x, s, t)`` ``(B, H, D)`` for ``x`` ``(B, H, D)``, s, t ``(B,)``."""
        config = self.config
        time = self.time_embedding(sinusoidal_time_encoding(t, config.time_encoding_dim))
        condition = time + self.target_time_embedding(s)
        modulation = self.modulation(F.silu(condition)).view(
            x.shape[0], 6 * config.num_layers + 2, config.hidden_dim)
        tokens = self.action_in(x) + self.action_position
        memory = context["tokens"]
        for index, block in enumerate(self.blocks):
            tokens = block(tokens, memory, modulation[:, 6 * index:6 * index + 6])
        shift, scale = modulation[:, -2], modulation[:, -1]
        tokens = self.norm_out(tokens) * (1 + scale[:, None]) + shift[:, None]
        return self.action_out(tokens)

    def normalized_action_target(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised chunk ``(B, H, D)`` and float mask ``(B, H, D)`` (0 past episode ends)."""
        action = batch["action"].to(self.action_mean.device, torch.float32)
        if action.ndim != 3 or action.shape[1:] != (self.chunk_size, self.action_dim):
            raise ValueError(f"action must have shape (B, {self.chunk_size}, {self.action_dim}), "
                             f"got {tuple(action.shape)}")
        normalized = (action - self.action_mean) / self.action_std
        is_pad = batch.get("action_is_pad")
        if is_pad is None:
            mask = torch.ones_like(normalized)
        else:
            valid = ~is_pad.to(normalized.device, torch.bool)
            mask = valid[:, :, None].to(normalized.dtype).expand_as(normalized)
        return normalized, mask

    def to_robot_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunk ``(B, H, D)`` -> robot units ``(B, H, A)`` (radians, metres...)."""
        return x * self.action_std + self.action_mean
