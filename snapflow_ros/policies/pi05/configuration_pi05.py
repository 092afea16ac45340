# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The LeRobot policy type ``snapflow_pi05``: LeRobot's PI05 config plus SnapFlow's fields.

Registered with ``PreTrainedConfig.register_subclass``; LeRobot finds its policy class in the
sibling ``modeling_pi05`` and its processor factory in ``processor_pi05`` by naming
convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi05.configuration_pi05 import PI05Config

from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import PaliGemmaConfigFields


@PreTrainedConfig.register_subclass("snapflow_pi05")
@dataclass
class SnapFlowPI05Config(PaliGemmaConfigFields, PI05Config):
    """LeRobot PI05 with ``phi_s``, a local tokenizer and optional backbone dimensions.

    The fields are :class:`~snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla.
    PaliGemmaConfigFields`'s.
    """
