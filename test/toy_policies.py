# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A tiny flow-matching policy with a target-time embedding, for tests only.

:class:`ToyFlowPolicy` implements the whole :class:`FlowMatchingPolicy` interface in a few
thousand parameters: an "encoder" on ``batch["state"]`` (the prefix, frozen in the SnapFlow
stage) and an MLP velocity network on the noisy chunk, ``sin/cos(t) + phi_s(s)`` and the
context. Actions are normalised with fixed per-dimension mean and std; the model's action width
may be padded beyond the robot's (the padded dimensions are masked out of the loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from snapflow_ros.policies.base import FlowMatchingPolicy, RobotInterface
from snapflow_ros.snapflow.time_embedding import TargetTimeEmbedding, sinusoidal_time_encoding


def _per_dim(value: float | Sequence[float], size: int, label: str) -> torch.Tensor:
    values = torch.as_tensor(value, dtype=torch.float32).flatten()
    if values.numel() == 1:
        values = values.expand(size)
    if values.numel() != size:
        raise ValueError(f"{label} needs 1 or {size} values, got {values.numel()}")
    return values.clone()


class ToyFlowPolicy(FlowMatchingPolicy):
    """Small MLP flow-matching policy: chunk ``(B, H, D)`` from a state ``(B, S)``.

    ``mix_positions=False`` makes the velocity of every chunk element depend only on that
    element's own noisy value (plus its step / dimension index, the times and the context),
    so inputs at masked positions cannot influence the others.
    """

    policy_type = "toy"

    def __init__(
        self,
        *,
        chunk_size: int = 2,
        num_actions: int = 1,
        padded_action_dim: int | None = None,
        state_dim: int = 2,
        hidden_dim: int = 64,
        time_dim: int = 16,
        context_dim: int = 8,
        action_mean: float | Sequence[float] = 0.0,
        action_std: float | Sequence[float] = 1.0,
        target_time: bool = True,
        mix_positions: bool = True,
        min_period: float = 4e-3,
        max_period: float = 4.0,
    ) -> None:
        super().__init__()
        action_dim = num_actions if padded_action_dim is None else padded_action_dim
        if action_dim < num_actions:
            raise ValueError(f"padded_action_dim={action_dim} < num_actions={num_actions}")
        self.robot = RobotInterface(
            joint_names=tuple(f"joint_{i}" for i in range(state_dim)),
            action_names=tuple(f"action_{i}" for i in range(num_actions)),
            camera_keys=(),
        )
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.num_actions = num_actions
        self.time_dim = time_dim
        self.time_periods = (min_period, max_period)
        self.mix_positions = mix_positions
        self.register_buffer("action_mean", _per_dim(action_mean, num_actions, "action_mean"))
        self.register_buffer("action_std", _per_dim(action_std, num_actions, "action_std"))
        dim_mask = torch.zeros(action_dim)
        dim_mask[:num_actions] = 1.0
        self.register_buffer("action_dim_mask", dim_mask)

        self.encoder = nn.Sequential(nn.Linear(state_dim, context_dim), nn.Tanh())
        if mix_positions:
            in_dim = chunk_size * action_dim + time_dim + context_dim
            out_dim = chunk_size * action_dim
        else:
            in_dim, out_dim = 1 + chunk_size + action_dim + time_dim + context_dim, 1
        self.velocity_net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, out_dim),
        )
        self.phi_s: TargetTimeEmbedding | None = (
            TargetTimeEmbedding(time_dim, time_dim, hidden_dim, min_period=min_period,
                                max_period=max_period) if target_time else None
        )

    def encode(self, batch: dict) -> torch.Tensor:
        """Context ``(B, context_dim)`` from ``batch["state"]`` ``(B, S)``."""
        state = batch["state"].to(self.action_mean.device, torch.float32)
        return self.encoder(state)

    def velocity(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor,
                 context: torch.Tensor) -> torch.Tensor:
        """Average velocity ``F(x, s, t)`` ``(B, H, D)``; ``phi_s(s)`` is added to the t code."""
        time_code = sinusoidal_time_encoding(t, self.time_dim, *self.time_periods, dtype=x.dtype)
        if self.phi_s is not None:
            time_code = time_code + self.phi_s(s)
        batch_size = x.shape[0]
        if self.mix_positions:
            features = torch.cat([x.flatten(1), time_code, context], dim=1)
            return self.velocity_net(features).view(batch_size, self.chunk_size, self.action_dim)
        grid = (batch_size, self.chunk_size, self.action_dim)
        step = torch.eye(self.chunk_size, device=x.device)[None, :, None, :].expand(*grid, -1)
        dim = torch.eye(self.action_dim, device=x.device)[None, None, :, :].expand(*grid, -1)
        features = torch.cat([
            x[..., None], step, dim,
            time_code[:, None, None, :].expand(*grid, -1),
            context[:, None, None, :].expand(*grid, -1),
        ], dim=-1)
        return self.velocity_net(features).squeeze(-1)

    def normalized_action_target(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised chunk ``(B, H, D)`` (zero in padded dims) and its loss mask ``(B, H, D)``."""
        actions = batch["action"].to(self.action_mean.device, torch.float32)
        normalised = (actions - self.action_mean) / self.action_std
        padding = self.action_dim - self.num_actions
        normalised = nn.functional.pad(normalised, (0, padding))
        mask = self.action_dim_mask.expand_as(normalised)
        if "action_is_pad" in batch:
            valid = (~batch["action_is_pad"].to(normalised.device)).to(normalised.dtype)
            mask = mask * valid[..., None]
        return normalised, mask

    def to_robot_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunk ``(B, H, D)`` -> robot-unit chunk ``(B, H, A)``."""
        return x[..., : self.num_actions] * self.action_std + self.action_mean

    def prefix_parameters(self) -> list[nn.Parameter]:
        """The state encoder's parameters (the prefix frozen in the SnapFlow stage)."""
        return list(self.encoder.parameters())

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        """Teacher: all but ``phi_s``, which must stay zero until SnapFlow; snapflow: no prefix."""
        if stage == "teacher" and self.phi_s is not None:
            skip = {id(p) for p in self.phi_s.parameters()}
            return [p for p in self.parameters() if id(p) not in skip and p.requires_grad]
        return super().trainable_parameters(stage)


def toy_batch(
    policy: ToyFlowPolicy,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    padded_steps: int = 0,
) -> dict:
    """Random training batch for ``policy``: state, robot-unit actions, ``action_is_pad``.

    The last ``padded_steps`` chunk steps of every odd row are marked as padding.
    """
    state_dim = len(policy.robot.joint_names)
    state = torch.randn(batch_size, state_dim, generator=generator)
    action = torch.randn(batch_size, policy.chunk_size, policy.num_actions, generator=generator)
    action = action * policy.action_std + policy.action_mean
    is_pad = torch.zeros(batch_size, policy.chunk_size, dtype=torch.bool)
    if padded_steps:
        is_pad[1::2, policy.chunk_size - padded_steps:] = True
    return {"state": state, "action": action, "action_is_pad": is_pad}
