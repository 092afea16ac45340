# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's PI05 as a SnapFlow policy (``policy_type = "pi05"``).

- ``configuration_pi05``: :class:`SnapFlowPI05Config`, LeRobot's config plus ``phi_s``, a
  local tokenizer and backbone dimensions, registered as the LeRobot policy type
  ``snapflow_pi05`` (importing this package registers it);
- ``modeling_pi05``: ``SnapFlowPI05Policy`` (the LeRobot policy with ``phi_s``) and
  ``SnapFlowPI05`` (our backend over it);
- ``processor_pi05``: LeRobot's PI05 processors, tokenising with the config's tokenizer.

What PI0 and PI05 share (the PaliGemma prefix) is in
:mod:`snapflow_ros.policies.lerobot_vla.paligemma`; what every LeRobot VLA shares, in
:mod:`snapflow_ros.policies.lerobot_vla`.
"""

from snapflow_ros.policies.pi05.configuration_pi05 import SnapFlowPI05Config

__all__ = ["SnapFlowPI05Config"]
