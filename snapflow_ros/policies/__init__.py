# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Flow-matching policies: the one protocol, the registry, checkpoints, and a folder per backend.

``base`` declares :class:`~snapflow_ros.policies.base.FlowMatchingPolicy` (model calls,
training parameter sets, inference stages, construction and checkpoint hooks); ``registry``
maps each ``policy_type`` to its backend and builds new policies; ``checkpoint`` saves and
loads them; ``normalization`` holds the statistics. Backends: ``compact/`` (ours), and
``smolvla/``, ``pi0/``, ``pi05/`` (LeRobot VLAs) over the shared ``lerobot_vla/`` base.
"""
