# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one list of policy types, and the one way to build a policy of a type.

A checkpoint's ``config.json`` records its ``policy_type``; :data:`POLICY_BACKENDS` maps that
string to the module that defines the class. Backends are imported only when asked for, so
loading a compact checkpoint never imports the LeRobot stack. A backend module may hold several
policy classes; the one whose ``policy_type`` attribute equals the requested string is used.

Construction goes through the class's hooks (declared on
:class:`~snapflow_ros.policies.base.FlowMatchingPolicy`): :func:`new_policy` for a policy to
train or benchmark, :func:`~snapflow_ros.policies.checkpoint.load_policy` for a saved one.
This module imports neither torch nor a backend at import time.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import TYPE_CHECKING

from snapflow_ros.config_fields import ConfigError

if TYPE_CHECKING:
    from snapflow_ros.policies.base import FlowMatchingPolicy, RobotInterface
    from snapflow_ros.policies.normalization import NormalizationStats


@dataclasses.dataclass(frozen=True)
class PolicyBackend:
    """Where the class of one policy type lives, and what it can start from."""

    module: str
    """Module defining the policy class (imported on first use)."""
    lerobot: bool = False
    """A LeRobot VLA: its config takes ``pretrained_path`` (a LeRobot checkpoint folder to
    start from) and ``device`` (where it is built)."""


POLICY_BACKENDS: dict[str, PolicyBackend] = {
    "compact": PolicyBackend("snapflow_ros.policies.compact.modeling_compact"),
    "smolvla": PolicyBackend("snapflow_ros.policies.smolvla.modeling_smolvla", lerobot=True),
    "pi0": PolicyBackend("snapflow_ros.policies.pi0.modeling_pi0", lerobot=True),
    "pi05": PolicyBackend("snapflow_ros.policies.pi05.modeling_pi05", lerobot=True),
}
"""Every policy type (the string checkpoints record) -> its backend."""


class UnknownPolicyTypeError(ConfigError):
    """No backend is registered for a policy type, or its module cannot be imported."""


def policy_types() -> tuple[str, ...]:
    """Every registered policy type, sorted."""
    return tuple(sorted(POLICY_BACKENDS))


def lerobot_policy_types() -> tuple[str, ...]:
    """The policy types that are LeRobot VLAs (see :attr:`PolicyBackend.lerobot`), sorted."""
    return tuple(sorted(name for name, backend in POLICY_BACKENDS.items() if backend.lerobot))


def policy_class(policy_type: str) -> type[FlowMatchingPolicy]:
    """The policy class for ``policy_type``; raises :class:`UnknownPolicyTypeError` clearly."""
    from snapflow_ros.policies.base import FlowMatchingPolicy

    backend = POLICY_BACKENDS.get(policy_type)
    if backend is None:
        raise UnknownPolicyTypeError(
            f"unknown policy_type {policy_type!r}; known types: {', '.join(policy_types())}")
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        raise UnknownPolicyTypeError(
            f"policy_type {policy_type!r} needs module {backend.module}, which cannot be "
            f"imported ({exc}); is its backend installed?") from exc
    for _, candidate in inspect.getmembers(module, inspect.isclass):
        if (issubclass(candidate, FlowMatchingPolicy) and not inspect.isabstract(candidate)
                and getattr(candidate, "policy_type", None) == policy_type):
            return candidate
    raise UnknownPolicyTypeError(
        f"module {backend.module} defines no policy class with policy_type {policy_type!r}")


def new_policy(policy_type: str, config_dict: dict, robot: RobotInterface,
               stats: NormalizationStats | None) -> FlowMatchingPolicy:
    """A new policy of ``policy_type`` for ``robot`` from config options (``from_config``).

    Untrained, except where the options name a pretrained start (a LeRobot VLA's
    ``pretrained_path``). ``stats``: the normalisation of the training data (None: identity).
    """
    return policy_class(policy_type).from_config(dict(config_dict), robot, stats)
