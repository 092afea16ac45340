# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI0 as a SnapFlow policy (``policy_type = "pi0"``).

- ``configuration_pi0``: :class:`SnapFlowPI0Config`, LeRobot's config plus ``phi_s``, a
  local tokenizer and backbone dimensions, registered as the LeRobot policy type
  ``snapflow_pi0`` (importing this package registers it);
- ``modeling_pi0``: ``SnapFlowPI0Policy`` (the LeRobot policy with ``phi_s``) and
  ``SnapFlowPI0`` (our backend over it);
- ``processor_pi0``: LeRobot's PI0 processors, tokenising with the config's tokenizer.

What PI0 and PI05 share (the PaliGemma prefix) is in
:mod:`snapflow_ros.policies.lerobot_vla.paligemma`; what every LeRobot VLA shares, in
:mod:`snapflow_ros.policies.lerobot_vla`.
"""

from snapflow_ros.policies.pi0.configuration_pi0 import SnapFlowPI0Config

__all__ = ["SnapFlowPI0Config"]
