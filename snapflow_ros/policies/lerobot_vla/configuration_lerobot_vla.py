# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Configs of the LeRobot VLA backends: our options, and what SnapFlow adds to LeRobot's configs.

- :class:`LeRobotVLAConfig`: how to build a LeRobot VLA (SmolVLA / PI0 / PI05) as a SnapFlow
  policy (the ``policy:`` section of a training job; ``policy_config`` in our checkpoints).
- :class:`SnapFlowConfigFields` / :class:`PaliGemmaConfigFields`: the fields every
  ``snapflow_*`` LeRobot config adds to the stock one (each backend's ``configuration_<name>``
  registers its config with ``PreTrainedConfig.register_subclass``).

A SnapFlow checkpoint must only be built by the SnapFlow policy classes: the stock classes would
silently drop ``phi_s``. ``validate_features`` (which every LeRobot VLA calls while it is
constructed) raises :class:`TargetTimeDroppedError` when a stock class builds from one of these
configs. This module imports neither torch nor LeRobot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

from snapflow_ros.config_fields import ConfigError, check_config, param

DTYPES = ("float32", "bfloat16")
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"
"""The (gated) tokenizer LeRobot's PI0 / PI05 processors use; pass a local copy offline."""


@dataclasses.dataclass(frozen=True)
class LeRobotVLAConfig:
    """How to build a LeRobot VLA (SmolVLA / PI0 / PI05) as a SnapFlow policy."""

    pretrained_path: str = param(
        "", "LeRobot checkpoint to start from: a folder, or a hub id (lerobot/smolvla_base) "
        "found in the Hugging Face cache. A stock one (smolvla / pi0 / pi05) loads as the "
        "teacher, a snapflow_* one as it is. Empty: random initialisation.")
    vlm_model_name: str = param(
        "", "SmolVLA: local SmolVLM folder (config.json, tokenizer, processor; no weights "
        "needed). Empty: the checkpoint's own (its saved copy, or its hub id in the cache).")
    tokenizer_path: str = param(
        "", "PI0 / PI05: local PaliGemma tokenizer folder (the hub one is gated). Empty: the "
        "checkpoint's own.")
    device: str = param("cpu", "Device the LeRobot policy and its preprocessor start on.")
    dtype: str = param("float32", "Weights of the VLM and expert: float32 or bfloat16 (the "
                       "projections and phi_s stay float32).", choices=DTYPES)
    gradient_checkpointing: bool = param(
        False, "Recompute the MLP blocks of every transformer layer in backward (the attention "
        "is not: LeRobot's layer loops pass KV caches that layer checkpointing would drop).")
    image_size: int = param(0, "Square image side fed to the vision encoder (pixels); 0: the "
                            "model's (SmolVLA 512, PI0 / PI05 224).", low=0, high=4096)
    chunk_size: int = param(0, "Action chunk length H; 0: the model's (50).", low=0, high=1000)
    num_steps: int = param(10, "Euler steps of LeRobot's own sampler (the LeRobot policy's "
                           "select_action); our sampler takes its own.", low=1, high=1000)
    default_task: str = param("", "Task text for batches without 'task'.")
    target_time_hidden_dim: int = param(0, "Hidden width of phi_s; 0: the expert width.", low=0)
    lerobot_sampling: str = param(
        "jump", "How LeRobot's own Euler loop uses phi_s: jump (s = t - 1/N, 1 step = SnapFlow "
        "1-NFE) or local (s = t).", choices=("jump", "local"))
    lerobot_overrides: dict = param(
        {}, "Further LeRobot config fields, e.g. {num_vlm_layers: 8} or backbone_dims.",
        ros=False)

    def __post_init__(self) -> None:
        check_config(self)


class TargetTimeDroppedError(RuntimeError):
    """A SnapFlow checkpoint is being loaded by a path that would lose its ``phi_s`` weights."""


_construction = threading.local()


@contextlib.contextmanager
def snapflow_construction() -> Iterator[None]:
    """Mark the current thread as building a SnapFlow policy (see :func:`check_builder`)."""
    depth = getattr(_construction, "depth", 0)
    _construction.depth = depth + 1
    try:
        yield
    finally:
        _construction.depth = depth


def check_builder(config: Any) -> None:
    """Raise :class:`TargetTimeDroppedError` unless a SnapFlow policy class builds ``config``."""
    if getattr(_construction, "depth", 0) == 0:
        stock = next(c.__name__ for c in type(config).__mro__
                     if c.__module__.startswith("lerobot.")).removesuffix("Config")
        raise TargetTimeDroppedError(
            f"a '{config.type}' config is being built by a policy class without phi_s (stock "
            f"LeRobot {stock}?), which would silently drop the SnapFlow target-time weights; "
            f"build it with lerobot.policies.get_policy_class('{config.type}') or "
            "snapflow_ros.policies.registry.new_policy")


@dataclasses.dataclass
class SnapFlowConfigFields:
    """What a ``snapflow_*`` LeRobot config adds to the stock one (listed first among its bases).

    ``target_time_hidden_dim``: hidden width of ``phi_s`` (0: the expert width).
    ``lerobot_sampling``: how LeRobot's own Euler loop (``select_action``) uses ``phi_s``:
    ``jump`` (``s = t - 1/num_steps``; 1 step is SnapFlow's 1-NFE sample) or ``local`` (``s = t``).
    """

    target_time_hidden_dim: int = 0
    lerobot_sampling: str = "jump"

    def __post_init__(self) -> None:
        super().__post_init__()  # the stock LeRobot config's own checks
        if self.lerobot_sampling not in ("jump", "local"):
            raise ConfigError(f"lerobot_sampling={self.lerobot_sampling!r}: must be jump or local")
        if self.target_time_hidden_dim < 0:
            raise ConfigError(
                f"target_time_hidden_dim={self.target_time_hidden_dim}: must be >= 0")

    def validate_features(self) -> None:
        """LeRobot's feature checks, refusing a builder that would drop ``phi_s``."""
        check_builder(self)
        super().validate_features()


@dataclasses.dataclass
class PaliGemmaConfigFields(SnapFlowConfigFields):
    """The SnapFlow fields of PI0 / PI05 configs: a local tokenizer and backbone dimensions.

    ``tokenizer_name``: the PaliGemma tokenizer (a local folder offline). ``backbone_dims``:
    replaces the Gemma / SigLIP sizes LeRobot hard-codes (see
    :func:`~snapflow_ros.policies.lerobot_vla.paligemma.paligemma_backbone_dims`); None keeps
    them.
    """

    tokenizer_name: str = PALIGEMMA_TOKENIZER
    backbone_dims: dict | None = None
