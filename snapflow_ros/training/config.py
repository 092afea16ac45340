# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Configuration of a training run: the teacher (flow matching) or SnapFlow stage."""

from __future__ import annotations

import dataclasses

from snapflow_ros.config_fields import ConfigError, check_config, param

TRAINING_STAGES = ("teacher", "snapflow")
"""The two training stages; a checkpoint records which one produced it."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation, checkpointing and SnapFlow settings of one training run."""

    stage: str = param("teacher", "teacher: flow matching on all parameters; snapflow: freeze the "
                       "observation encoder and self-distil to one step.", choices=TRAINING_STAGES)
    steps: int = param(3000, "Total optimiser steps of the run (a resumed run counts on).",
                       low=1)
    batch_size: int = param(32, "Samples per optimiser step (per process when distributed).",
                            low=1)
    lr: float = param(3e-4, "Peak learning rate of AdamW.", low=0.0, high=1.0)
    weight_decay: float = param(1e-4, "AdamW weight decay (matrices and kernels only).",
                                low=0.0, high=1.0)
    warmup_steps: int = param(100, "Linear learning-rate warm-up steps.", low=0)
    min_lr_fraction: float = param(
        0.05, "Cosine decay ends at this fraction of lr.", low=0.0, high=1.0)
    grad_clip: float = param(1.0, "Gradient norm clip (0 disables).", low=0.0)
    val_fraction: float = param(
        0.1, "Fraction of episodes the caller holds out for validation (split by episode, not "
        "by sample, by whoever builds the datasets).", low=0.0, high=0.9)
    val_every: int = param(500, "Validate every this many steps (0: only at the end).", low=0)
    eval_num_samples: int = param(
        256, "Held-out samples used for validation loss and action MSE.", low=1)
    val_num_steps: tuple[int, ...] = param(
        (1, 10), "Denoising step counts at which validation measures action MSE.", low=1)
    checkpoint_every: int = param(1000, "Save a checkpoint every this many steps (0: only at the "
                                  "end).", low=0)
    keep_checkpoints: int = param(3, "Newest checkpoints kept in the run directory.", low=1)
    log_every: int = param(50, "Write training metrics every this many steps.", low=1)
    seed: int = param(0, "Seed of data order, noise, times and augmentation (not of the "
                      "policy's init, which its builder seeds).",
                      low=0)
    device: str = param("auto", "cpu, cuda, cuda:N or auto (cuda when available).")
    num_workers: int = param(0, "DataLoader worker processes (0: load in the training process).",
                             low=0, high=64)
    alpha: float = param(0.5, "SnapFlow: fraction of each batch used for flow matching.",
                         low=0.0, high=1.0)
    consistency_weight: float = param(0.1, "SnapFlow: weight lambda of the consistency loss.",
                                      low=0.0)
    time_distribution: str = param(
        "uniform", "Distribution of flow-matching times: uniform or beta (Beta(1.5, 1)).",
        choices=("uniform", "beta"))
    velocity_clamp: float = param(20.0, "SnapFlow: clamp of the two-step target velocities.",
                                  low=0.0)

    def __post_init__(self) -> None:
        check_config(self)
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")
                                          or self.device == "mps"):
            raise ConfigError(f"device={self.device!r}: must be auto, cpu, cuda, cuda:N or mps")
        if self.velocity_clamp <= 0:
            raise ConfigError(f"velocity_clamp={self.velocity_clamp!r}: must be > 0")
        if not self.val_num_steps:
            raise ConfigError("val_num_steps must list at least one step count")

    def snapflow_config(self):  # -> SnapFlowConfig; imported lazily to keep this module light
        """The :class:`~snapflow_ros.snapflow.objective.SnapFlowConfig` of these settings."""
        from snapflow_ros.snapflow.objective import SnapFlowConfig

        return SnapFlowConfig(alpha=self.alpha, consistency_weight=self.consistency_weight,
                              time_distribution=self.time_distribution,
                              velocity_clamp=self.velocity_clamp)
