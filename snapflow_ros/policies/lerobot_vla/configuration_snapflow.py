# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot policy types ``snapflow_smolvla``, ``snapflow_pi0`` and ``snapflow_pi05``.

Each config is LeRobot's own (SmolVLA / PI0 / PI05) plus the fields SnapFlow needs, registered
with ``PreTrainedConfig.register_subclass``. LeRobot finds the policy classes in
``modeling_snapflow`` and the processor factories in ``processor_snapflow`` by its naming
convention, so ``get_policy_class("snapflow_pi05")``, ``make_pre_post_processors`` and
``from_pretrained`` work once this module is imported (``snapflow_ros.policies.lerobot_vla``
imports it).

A SnapFlow checkpoint must only be built by the SnapFlow policy classes: the stock classes would
silently drop ``phi_s``. ``validate_features`` (which every LeRobot VLA calls while it is
constructed) raises :class:`TargetTimeDroppedError` when a stock class builds from one of these
configs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

from snapflow_ros.config_fields import ConfigError

PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"
"""The (gated) tokenizer LeRobot's PI0 / PI05 processors use; pass a local copy offline."""


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


def check_builder(config: PreTrainedConfig) -> None:
    """Raise :class:`TargetTimeDroppedError` unless a SnapFlow policy class builds ``config``."""
    if getattr(_construction, "depth", 0) == 0:
        stock = type(config).__mro__[1].__name__.removesuffix("Config")
        raise TargetTimeDroppedError(
            f"a '{config.type}' config is being built by a policy class without phi_s (stock "
            f"LeRobot {stock}?), which would silently drop the SnapFlow target-time weights; "
            f"build it with lerobot.policies.get_policy_class('{config.type}') or "
            "snapflow_ros.policies.lerobot_vla")


def _check_snapflow_fields(config: PreTrainedConfig) -> None:
    if config.lerobot_sampling not in ("jump", "local"):
        raise ConfigError(f"lerobot_sampling={config.lerobot_sampling!r}: must be jump or local")
    if config.target_time_hidden_dim < 0:
        raise ConfigError(f"target_time_hidden_dim={config.target_time_hidden_dim}: must be >= 0")


@PreTrainedConfig.register_subclass("snapflow_smolvla")
@dataclass
class SnapFlowSmolVLAConfig(SmolVLAConfig):
    """LeRobot SmolVLA with SnapFlow's target-time embedding ``phi_s``.

    ``target_time_hidden_dim``: hidden width of ``phi_s`` (0: the expert width).
    ``lerobot_sampling``: how LeRobot's own Euler loop (``select_action``) uses ``phi_s``:
    ``jump`` (``s = t - 1/num_steps``; 1 step is SnapFlow's 1-NFE sample) or ``local`` (``s = t``).
    """

    target_time_hidden_dim: int = 0
    lerobot_sampling: str = "jump"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_snapflow_fields(self)

    def validate_features(self) -> None:
        """LeRobot's feature checks, refusing a builder that would drop ``phi_s``."""
        check_builder(self)
        super().validate_features()


@PreTrainedConfig.register_subclass("snapflow_pi0")
@dataclass
class SnapFlowPI0Config(PI0Config):
    """LeRobot PI0 with ``phi_s``, a local tokenizer and optional backbone dimensions.

    ``tokenizer_name``: the PaliGemma tokenizer (a local folder offline). ``backbone_dims``:
    replaces the Gemma / SigLIP sizes LeRobot hard-codes (see ``offline_backbones``); None keeps
    them. Other fields as :class:`SnapFlowSmolVLAConfig`.
    """

    target_time_hidden_dim: int = 0
    lerobot_sampling: str = "jump"
    tokenizer_name: str = PALIGEMMA_TOKENIZER
    backbone_dims: dict | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_snapflow_fields(self)

    def validate_features(self) -> None:
        """LeRobot's feature checks, refusing a builder that would drop ``phi_s``."""
        check_builder(self)
        super().validate_features()


@PreTrainedConfig.register_subclass("snapflow_pi05")
@dataclass
class SnapFlowPI05Config(PI05Config):
    """LeRobot PI05 with ``phi_s`` on the adaRMS conditioning; fields as in PI0's."""

    target_time_hidden_dim: int = 0
    lerobot_sampling: str = "jump"
    tokenizer_name: str = PALIGEMMA_TOKENIZER
    backbone_dims: dict | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_snapflow_fields(self)

    def validate_features(self) -> None:
        """LeRobot's feature checks, refusing a builder that would drop ``phi_s``."""
        check_builder(self)
        super().validate_features()


SNAPFLOW_CONFIGS = {
    "smolvla": SnapFlowSmolVLAConfig,
    "pi0": SnapFlowPI0Config,
    "pi05": SnapFlowPI05Config,
}
"""Our registered config class for each stock LeRobot policy type."""
