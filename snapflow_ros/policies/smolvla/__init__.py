# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot's SmolVLA as a SnapFlow policy (``policy_type = "smolvla"``).

- ``configuration_smolvla``: :class:`SnapFlowSmolVLAConfig`, LeRobot's config plus ``phi_s``
  fields, registered as the LeRobot policy type ``snapflow_smolvla`` (importing this package
  registers it, so LeRobot's ``get_policy_class``, ``make_pre_post_processors`` and
  ``from_pretrained`` know it);
- ``modeling_smolvla``: ``SnapFlowSmolVLAPolicy`` (the LeRobot policy with ``phi_s``) and
  ``SnapFlowSmolVLA`` (our backend over it);
- ``processor_smolvla``: LeRobot's SmolVLA processors under the ``snapflow_smolvla`` name;
- ``fast_inference_smolvla``: SmolVLM vision code without host syncs, for CUDA graph capture.

The code all LeRobot VLAs share is in :mod:`snapflow_ros.policies.lerobot_vla`.
"""

from snapflow_ros.policies.smolvla.configuration_smolvla import SnapFlowSmolVLAConfig

__all__ = ["SnapFlowSmolVLAConfig"]
