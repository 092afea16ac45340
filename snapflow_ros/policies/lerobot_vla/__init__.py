# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's SmolVLA, PI0 and PI05 as SnapFlow flow-matching policies.

Importing this package also registers the LeRobot policy types ``snapflow_smolvla``,
``snapflow_pi0`` and ``snapflow_pi05`` (so LeRobot's ``from_pretrained`` and factories know them).

- :class:`SnapFlowSmolVLA`, :class:`SnapFlowPI0`, :class:`SnapFlowPI05`: our
  :class:`~snapflow_ros.policies.base.FlowMatchingPolicy` backends (``policy_type`` ``smolvla``,
  ``pi0``, ``pi05``), built with ``build(LeRobotVLAConfig(...), robot, stats)``;
- :func:`policy_class_for`: the backend class for a policy type;
- ``modeling_snapflow``: the LeRobot policy classes, :func:`load_stock_checkpoint` and
  :func:`verify_target_time_loaded`.
"""

from snapflow_ros.policies.lerobot_vla.common import LeRobotVLAConfig, LeRobotVLAPolicy
from snapflow_ros.policies.lerobot_vla.configuration_snapflow import TargetTimeDroppedError
from snapflow_ros.policies.lerobot_vla.modeling_snapflow import (
    load_stock_checkpoint,
    verify_target_time_loaded,
)
from snapflow_ros.policies.lerobot_vla.pi0 import SnapFlowPI0
from snapflow_ros.policies.lerobot_vla.pi05 import SnapFlowPI05
from snapflow_ros.policies.lerobot_vla.smolvla import SnapFlowSmolVLA

POLICY_CLASSES = {cls.policy_type: cls for cls in (SnapFlowSmolVLA, SnapFlowPI0, SnapFlowPI05)}


def policy_class_for(policy_type: str) -> type[LeRobotVLAPolicy]:
    """The backend class for ``policy_type`` (``smolvla``, ``pi0`` or ``pi05``)."""
    try:
        return POLICY_CLASSES[policy_type]
    except KeyError:
        raise KeyError(f"no LeRobot VLA backend {policy_type!r}; known: "
                       f"{', '.join(POLICY_CLASSES)}") from None


__all__ = [
    "LeRobotVLAConfig",
    "LeRobotVLAPolicy",
    "POLICY_CLASSES",
    "SnapFlowPI0",
    "SnapFlowPI05",
    "SnapFlowSmolVLA",
    "TargetTimeDroppedError",
    "load_stock_checkpoint",
    "policy_class_for",
    "verify_target_time_loaded",
]
