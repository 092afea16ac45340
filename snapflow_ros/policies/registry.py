# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Map a checkpoint's ``policy_type`` string to its policy class, importing backends lazily.

Backends are imported only when asked for, so loading a compact checkpoint never imports the
LeRobot stack. A backend module may hold several policy classes; the one whose
``policy_type`` attribute equals the requested string is used.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from snapflow_ros.config_fields import ConfigError

if TYPE_CHECKING:
    from snapflow_ros.policies.base import FlowMatchingPolicy, RobotInterface
    from snapflow_ros.policies.normalization import NormalizationStats

_BACKENDS: dict[str, str] = {
    "compact": "snapflow_ros.policies.compact.modeling_compact",
    "smolvla": "snapflow_ros.policies.lerobot_vla",
    "pi0": "snapflow_ros.policies.lerobot_vla",
    "pi05": "snapflow_ros.policies.lerobot_vla",
}


class UnknownPolicyTypeError(ConfigError):
    """No backend is registered for a policy type, or its module cannot be imported."""


def register_policy_type(policy_type: str, module: str) -> None:
    """Register (or replace) the module that defines the class for ``policy_type``."""
    _BACKENDS[policy_type] = module


def policy_types() -> tuple[str, ...]:
    """Every registered policy type, sorted."""
    return tuple(sorted(_BACKENDS))


def policy_class(policy_type: str) -> type[FlowMatchingPolicy]:
    """The policy class for ``policy_type``; raises :class:`UnknownPolicyTypeError` clearly."""
    from snapflow_ros.policies.base import FlowMatchingPolicy

    module_name = _BACKENDS.get(policy_type)
    if module_name is None:
        raise UnknownPolicyTypeError(
            f"unknown policy_type {policy_type!r}; known types: {', '.join(policy_types())}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownPolicyTypeError(
            f"policy_type {policy_type!r} needs module {module_name}, which cannot be imported "
            f"({exc}); is its backend installed?") from exc
    for _, candidate in inspect.getmembers(module, inspect.isclass):
        if (issubclass(candidate, FlowMatchingPolicy) and not inspect.isabstract(candidate)
                and getattr(candidate, "policy_type", None) == policy_type):
            return candidate
    raise UnknownPolicyTypeError(
        f"module {module_name} defines no policy class with policy_type {policy_type!r}")


def build_policy(policy_type: str, config_dict: dict, robot: RobotInterface,
                 stats: NormalizationStats | None, *,
                 checkpoint_dir: str | Path | None = None) -> FlowMatchingPolicy:
    """Build an (untrained) policy of ``policy_type`` via its ``from_policy_config``.

    ``checkpoint_dir`` reaches backends that keep files beside the weights (a LeRobot VLA's
    backbone config and tokenizer), so a checkpoint loads on a machine without the paths it
    was trained with.
    """
    cls = policy_class(policy_type)
    factory = getattr(cls, "from_policy_config", None)
    if factory is None:
        raise UnknownPolicyTypeError(
            f"{cls.__name__} (policy_type {policy_type!r}) has no from_policy_config()")
    if checkpoint_dir is not None and "checkpoint_dir" in inspect.signature(factory).parameters:
        return factory(config_dict, robot, stats, checkpoint_dir=checkpoint_dir)
    return factory(config_dict, robot, stats)
