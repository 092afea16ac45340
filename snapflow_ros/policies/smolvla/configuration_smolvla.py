# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The LeRobot policy type ``snapflow_smolvla``: LeRobot's SmolVLA config plus ``phi_s``.

Registered with ``PreTrainedConfig.register_subclass``; LeRobot finds its policy class in the
sibling ``modeling_smolvla`` and its processor factory in ``processor_smolvla`` by naming
convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import SnapFlowConfigFields


@PreTrainedConfig.register_subclass("snapflow_smolvla")
@dataclass
class SnapFlowSmolVLAConfig(SnapFlowConfigFields, SmolVLAConfig):
    """LeRobot SmolVLA with SnapFlow's target-time embedding ``phi_s``.

    The fields are :class:`~snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla.
    SnapFlowConfigFields`'s.
    """
