# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The flow-matching policy interface every backend implements.

Time convention (as LeRobot / openpi): ``t = 1`` is Gaussian noise, ``t = 0`` the clean,
normalised action chunk. ``velocity(x, s, t, context)`` is the average velocity ``F`` that carries
``x`` from time ``t`` to the earlier time ``s <= t``: ``x_s = x_t - (t - s) * F``. With ``s = t``
it is the ordinary local velocity of a flow-matching model.

Batches exchanged with a policy are plain dicts (the layout :mod:`snapflow_ros.data` produces):

- ``"images"``: ``{camera_key: uint8 tensor (B, 3, h, w)}`` (RGB), or float in [0, 1];
- ``"state"``: float tensor ``(B, S)`` in robot units (radians, metres);
- ``"task"``: optional list of ``B`` strings;
- ``"action"``: float tensor ``(B, H, A)`` in robot units (training only);
- ``"action_is_pad"``: bool tensor ``(B, H)``, True past an episode end (training only).

:class:`FlowMatchingPolicy` is the whole protocol: the model calls (``encode``, ``velocity``,
``normalized_action_target``, ``to_robot_actions``), the parameter sets of the training stages,
the inference stages :class:`~snapflow_ros.runtime.fast_inference.FastInference` drives, and the
construction / checkpoint hooks :mod:`snapflow_ros.policies.checkpoint` and
:mod:`snapflow_ros.policies.registry` call. Every hook has a documented default, so a backend
overrides only what it needs.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils import _pytree

from snapflow_ros.config_fields import ConfigError, check_config, param

if TYPE_CHECKING:
    from snapflow_ros.policies.normalization import NormalizationStats

Context = Any  # a backend's encoded observation: any pytree of tensors with batch dim first


class CheckpointMismatchError(ConfigError):
    """A checkpoint was trained for other joints, cameras or image sizes than requested."""


@dataclasses.dataclass(frozen=True)
class RobotInterface:
    """What a policy consumes and produces on a robot: names, cameras and image size."""

    joint_names: tuple[str, ...] = param((), "State joints, in the order the model reads them.")
    action_names: tuple[str, ...] = param(
        (), "Action dimensions, in the order the model writes them (default: joint_names)."
    )
    camera_keys: tuple[str, ...] = param(("top",), "Camera keys the model was trained on.")
    image_height: int = param(128, "Image height fed to the model (pixels).", low=8, high=4096)
    image_width: int = param(128, "Image width fed to the model (pixels).", low=8, high=4096)
    environment_state_names: tuple[str, ...] = param(
        (), "Environment-state dimensions (object poses ...), 'source/field' in model order "
            "(e.g. object_poses/0/x); empty: the policy reads none.")

    def __post_init__(self) -> None:
        check_config(self)
        if not self.action_names and self.joint_names:
            object.__setattr__(self, "action_names", tuple(self.joint_names))
        for label, names in (("joint_names", self.joint_names),
                             ("action_names", self.action_names),
                             ("camera_keys", self.camera_keys),
                             ("environment_state_names", self.environment_state_names)):
            if len(set(names)) != len(names):
                raise ConfigError(f"{label} has duplicates: {list(names)}")

    def check_matches(self, other: RobotInterface, *, what: str = "checkpoint") -> None:
        """Raise :class:`CheckpointMismatchError` naming every field where ``other`` differs."""
        problems = []
        for label in ("joint_names", "action_names", "camera_keys", "environment_state_names"):
            mine, theirs = getattr(self, label), getattr(other, label)
            if tuple(mine) != tuple(theirs):
                missing = [n for n in theirs if n not in mine]
                extra = [n for n in mine if n not in theirs]
                detail = f"missing {missing}" if missing else ""
                if extra:
                    detail += (", " if detail else "") + f"unexpected {extra}"
                problems.append(
                    f"{label}: {what} has {list(mine)}, robot has {list(theirs)}"
                    + (f" ({detail})" if detail else " (order differs)")
                )
        if problems:
            raise CheckpointMismatchError(
                f"{what} does not match the robot: " + "; ".join(problems))


class FlowMatchingPolicy(nn.Module, abc.ABC):
    """A flow-matching action policy with a target-time embedding (SnapFlow's ``phi_s``).

    Subclasses set ``self.robot`` (a :class:`RobotInterface`), ``self.chunk_size`` (H) and
    ``self.action_dim`` (D, the model's possibly padded action width), and implement
    :meth:`encode`, :meth:`velocity`, :meth:`normalized_action_target` and
    :meth:`to_robot_actions`. A backend that is saved and loaded also implements
    :meth:`from_policy_config` and :meth:`policy_config_dict`, and sets :attr:`policy_type` to
    the string its checkpoints record (the key of :mod:`snapflow_ros.policies.registry`).
    """

    robot: RobotInterface
    chunk_size: int
    action_dim: int
    policy_type: str = "base"

    # -- construction and checkpoints -------------------------------------------------------------

    @classmethod
    def from_policy_config(cls, config_dict: dict, robot: RobotInterface,
                           stats: NormalizationStats | None, *,
                           checkpoint_dir: str | Path | None = None) -> FlowMatchingPolicy:
        """Rebuild the untrained architecture that :meth:`policy_config_dict` recorded.

        The checkpoint loader fills the weights afterwards. ``checkpoint_dir`` is the checkpoint
        being loaded, for backends that keep files beside the weights (a LeRobot VLA's backbone
        config and tokenizer). Default: raises ``NotImplementedError`` (not loadable).
        """
        raise NotImplementedError(
            f"{cls.__name__} (policy_type {cls.policy_type!r}) cannot be rebuilt from a "
            "checkpoint: it does not implement from_policy_config()")

    @classmethod
    def from_config(cls, config_dict: dict, robot: RobotInterface,
                    stats: NormalizationStats | None) -> FlowMatchingPolicy:
        """A new policy for ``robot`` from config options (a pretrained start they name loads).

        Default: :meth:`from_policy_config`, for backends whose new policies start untrained.
        """
        return cls.from_policy_config(config_dict, robot, stats)

    def policy_config_dict(self) -> dict:
        """The policy's config as a JSON-safe mapping (``config.json``'s ``policy_config``).

        Default: ``{}`` (a policy class without options).
        """
        return {}

    def normalization_stats(self) -> NormalizationStats | None:
        """The statistics to save in ``normalization.json``; default None (none to save)."""
        return None

    def save_extra(self, directory: Path) -> None:
        """Write backend files into the checkpoint ``directory`` (inside the atomic write).

        Default: nothing.
        """

    def load_extra(self, directory: Path) -> None:
        """Read or check backend files of checkpoint ``directory`` after its weights loaded.

        Default: nothing.
        """

    # -- inference stages -------------------------------------------------------------------------

    def preprocess(self, batch: dict) -> dict:
        """The batch :meth:`encode_preprocessed` reads, tensors on the policy's device.

        Default: ``batch`` with its tensors moved to :attr:`device` (a LeRobot VLA runs its
        preprocessor: normalisation, tokenisation).
        """
        device = self.device
        return _pytree.tree_map(
            lambda leaf: leaf.to(device, non_blocking=True)
            if isinstance(leaf, torch.Tensor) else leaf, batch)

    def encode_preprocessed(self, processed: dict) -> Context:
        """:meth:`encode` of a batch :meth:`preprocess` returned; default: :meth:`encode`."""
        return self.encode(processed)

    def install_capture_shims(self) -> Callable[[], None]:
        """Swap host-syncing code inside the model for exact device-only code; returns the undo.

        Called while an accelerated inference path (CUDA graphs, compile) is alive: a host
        round-trip stalls it and breaks graph capture. Default: nothing to swap.
        """
        return _nothing_to_undo

    # -- the model --------------------------------------------------------------------------------

    @abc.abstractmethod
    def encode(self, batch: dict) -> Context:
        """Encode the observation part of ``batch`` once (the prefix) into a context."""

    @abc.abstractmethod
    def velocity(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor,
                 context: Context) -> torch.Tensor:
        """Average velocity ``F(x, s, t | context)``: x ``(B, H, D)``, s and t ``(B,)``."""

    @abc.abstractmethod
    def normalized_action_target(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean normalised chunk ``(B, H, D)`` and its float loss mask ``(B, H, D)``.

        The mask is 0 on padded chunk steps (``action_is_pad``) and padded action dimensions.
        """

    @abc.abstractmethod
    def to_robot_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunk ``(B, H, D)`` -> robot-unit chunk ``(B, H, A)``."""

    def select_context(self, context: Context, index: torch.Tensor) -> Context:
        """Rows ``index`` of a context (every tensor leaf indexed on its first dimension)."""
        return _pytree.tree_map(
            lambda leaf: leaf.index_select(0, index) if isinstance(leaf, torch.Tensor) else leaf,
            context,
        )

    def prefix_parameters(self) -> list[nn.Parameter]:
        """Parameters frozen in the ``snapflow`` stage (the observation encoder / VLM)."""
        return []

    def target_time_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``phi_s`` (attribute ``target_time_embedding``), if the policy has it."""
        module = getattr(self, "target_time_embedding", None)
        return list(module.parameters()) if module is not None else []

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        """Parameters the optimiser updates in ``stage`` (``teacher`` or ``snapflow``).

        The teacher stage leaves ``phi_s`` at zero: trained on ``s = t`` only, it would stop
        being the identity and the one-step jump would start from an untrained extrapolation.
        The ``snapflow`` stage freezes the prefix (observation encoder / VLM).
        """
        if stage == "teacher":
            excluded = {id(p) for p in self.target_time_parameters()}
        elif stage == "snapflow":
            excluded = {id(p) for p in self.prefix_parameters()}
        else:
            raise ValueError(f"unknown stage '{stage}': teacher or snapflow")
        return [p for p in self.parameters() if id(p) not in excluded and p.requires_grad]

    @property
    def device(self) -> torch.device:
        """The device of the policy's parameters."""
        return next(self.parameters()).device


def _nothing_to_undo() -> None:
    """The undo of :meth:`FlowMatchingPolicy.install_capture_shims` when nothing was swapped."""
