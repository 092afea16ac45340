# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The LeRobot policy type ``snapflow_pi0``: LeRobot's PI0 config plus SnapFlow's fields.

Registered with ``PreTrainedConfig.register_subclass``; LeRobot finds its policy class in the
sibling ``modeling_pi0`` and its processor factory in ``processor_pi0`` by naming
convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config

from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import PaliGemmaConfigFields


@PreTrainedConfig.register_subclass("snapflow_pi0")
@dataclass
class SnapFlowPI0Config(PaliGemmaConfigFields, PI0Config):
    """LeRobot PI0 with ``phi_s``, a local tokenizer and optional backbone dimensions.

    The fields are :class:`~snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla.
    PaliGemmaConfigFields`'s.
    """
