# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Configuration of a training run: the teacher (flow matching) or SnapFlow stage.

The optimisation recipe (learning rate, batch size, warm-up, clipping, weight decay, final lr,
weight EMA) depends on the policy: :data:`TRAINING_DEFAULTS` holds each backend's. A
:class:`TrainConfig` field left unset (None; an unset ROS parameter; no flag) takes the
backend's value in :meth:`TrainConfig.for_policy`; a value the user gave is kept as given.
"""

from __future__ import annotations

import dataclasses

from snapflow_ros.config_fields import ConfigError, check_config, param

TRAINING_STAGES = ("teacher", "snapflow")
"""The two training stages; a checkpoint records which one produced it."""


@dataclasses.dataclass(frozen=True)
class TrainingDefaults:
    """One backend's optimisation recipe: the :class:`TrainConfig` values the user did not set."""

    lr: float
    batch_size: int
    warmup_steps: int
    grad_clip: float
    weight_decay: float
    min_lr_fraction: float
    ema_decay: float = 0.0
    """Decay of the EMA of the trained weights (0: no EMA)."""
    schedule_steps: int = 0
    """Run length the warm-up is quoted for: a shorter run scales the default warm-up by
    ``steps / schedule_steps``, as LeRobot's cosine schedule does (0: never scaled)."""
    source: str = ""
    """Where the numbers come from."""


_VLA_SOURCE = ("SnapFlow paper (AdamW, lr 2.5e-5, clip 1.0, batch 4); LeRobot 0.6.1 pi0 / pi05 "
               "config (warm-up 1000 of 30000 decay steps, decay to 2.5e-6, weight decay 0.01); "
               "no weight EMA (a copy of a VLA's trained weights costs memory)")
_VLA_DEFAULTS = TrainingDefaults(lr=2.5e-5, batch_size=4, warmup_steps=1000, grad_clip=1.0,
                                 weight_decay=0.01, min_lr_fraction=0.1, schedule_steps=30000,
                                 source=_VLA_SOURCE)
COMPACT_DEFAULTS = TrainingDefaults(
    lr=3e-4, batch_size=32, warmup_steps=100, grad_clip=1.0, weight_decay=1e-4,
    min_lr_fraction=0.05, ema_decay=0.999,
    source="the compact policy's own scale (trained from scratch); weight EMA as Diffusion Policy")
TRAINING_DEFAULTS: dict[str, TrainingDefaults] = {
    "compact": COMPACT_DEFAULTS,
    # LeRobot's SmolVLA config itself says lr 1e-4, clip 10, weight decay 1e-10; the paper
    # fine-tunes SmolVLA with the same recipe as pi0.5, which is what SnapFlow needs here.
    "smolvla": dataclasses.replace(_VLA_DEFAULTS, weight_decay=1e-10, source=_VLA_SOURCE.replace(
        "weight decay 0.01", "SmolVLA config's weight decay 1e-10")),
    "pi0": _VLA_DEFAULTS,
    "pi05": _VLA_DEFAULTS,
}
"""Each policy type's recipe; any other type (a test or third-party backend) gets compact's."""

RECIPE_FIELDS = ("lr", "batch_size", "warmup_steps", "grad_clip", "weight_decay",
                  "min_lr_fraction", "ema_decay")


def training_defaults(policy_type: str) -> TrainingDefaults:
    """The recipe of ``policy_type`` (:data:`TRAINING_DEFAULTS`; compact's for other types)."""
    return TRAINING_DEFAULTS.get(policy_type, COMPACT_DEFAULTS)


def _recipe_note(what: str) -> str:
    values = ", ".join(f"{name} {getattr(d, what)}" for name, d in TRAINING_DEFAULTS.items()
                       if name != "pi05")
    return f" Unset: the policy's default ({values.replace('pi0', 'pi0 / pi05')})."


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation, checkpointing and SnapFlow settings of one training run."""

    stage: str = param("teacher", "teacher: flow matching on all parameters; snapflow: freeze the "
                       "observation encoder and self-distil to one step.", choices=TRAINING_STAGES)
    steps: int = param(3000, "Total optimiser steps of the run (a resumed run counts on).",
                       low=1)
    batch_size: int | None = param(
        None, "Samples per optimiser step (per process when distributed)."
        + _recipe_note("batch_size"), low=1)
    lr: float | None = param(None, "Peak learning rate of AdamW." + _recipe_note("lr"),
                             low=0.0, high=1.0)
    weight_decay: float | None = param(
        None, "AdamW weight decay (matrices and kernels only)." + _recipe_note("weight_decay"),
        low=0.0, high=1.0)
    warmup_steps: int | None = param(
        None, "Linear learning-rate warm-up steps." + _recipe_note("warmup_steps")
        + " A VLA's default is for 30000 steps; a shorter run scales it down (as LeRobot).",
        low=0)
    min_lr_fraction: float | None = param(
        None, "Cosine decay ends at this fraction of lr." + _recipe_note("min_lr_fraction"),
        low=0.0, high=1.0)
    grad_clip: float | None = param(
        None, "Gradient norm clip (0 disables)." + _recipe_note("grad_clip"), low=0.0)
    ema_decay: float | None = param(
        None, "Decay of the moving average (EMA) of the trained weights (0: off), warmed up as "
        "min(ema_decay, (1 + step) / (10 + step)); validation and every checkpoint's weights "
        "are the average, the resume state keeps the raw ones too."
        + _recipe_note("ema_decay"), low=0.0, high=0.99999)
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

    def for_policy(self, policy_type: str) -> TrainConfig:
        """These settings with every unset recipe field taken from ``policy_type``'s defaults.

        Values already set are kept (a user's flag, YAML key or ``--set`` wins). Idempotent.
        """
        defaults = training_defaults(policy_type)
        changes = {name: getattr(defaults, name) for name in RECIPE_FIELDS
                   if getattr(self, name) is None}
        if "warmup_steps" in changes and 0 < self.steps < defaults.schedule_steps:
            changes["warmup_steps"] = int(defaults.warmup_steps * self.steps
                                          / defaults.schedule_steps)
        return dataclasses.replace(self, **changes) if changes else self

    def unset_recipe_fields(self) -> tuple[str, ...]:
        """The recipe fields still unset (a policy's default applies): empty once resolved."""
        return tuple(name for name in RECIPE_FIELDS if getattr(self, name) is None)

    def snapflow_config(self):  # -> SnapFlowConfig; imported lazily to keep this module light
        """The :class:`~snapflow_ros.snapflow.objective.SnapFlowConfig` of these settings."""
        from snapflow_ros.snapflow.objective import SnapFlowConfig

        return SnapFlowConfig(alpha=self.alpha, consistency_weight=self.consistency_weight,
                              time_distribution=self.time_distribution,
                              velocity_clamp=self.velocity_clamp)
