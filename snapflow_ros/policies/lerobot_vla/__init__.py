# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The base every LeRobot VLA backend (``smolvla/``, ``pi0/``, ``pi05/``) builds on.

- ``configuration_lerobot_vla``: :class:`LeRobotVLAConfig` (our options) and the fields every
  ``snapflow_*`` LeRobot config adds to the stock one;
- ``modeling_lerobot_vla``: :class:`LeRobotVLAPolicy`, a ``snapflow_*`` LeRobot policy and its
  processors as a :class:`~snapflow_ros.policies.base.FlowMatchingPolicy`;
- ``processor_lerobot_vla``: LeRobot's processors from our statistics, or loaded offline;
- ``building``: :func:`build_lerobot_vla`, a backend from a stock or ``snapflow_*`` LeRobot
  checkpoint, from our checkpoint's recorded config, or randomly initialised;
- ``lerobot_checkpoint``: LeRobot-format folders loaded strictly, with ``phi_s`` verified;
- ``target_time``: where ``phi_s`` enters LeRobot's models, without editing LeRobot;
- ``paligemma``: what PI0 and PI05 share;
- ``offline_backbones``: tokenizer and SmolVLM folders written locally (tests, benchmarks).

Build a backend with :func:`snapflow_ros.policies.registry.new_policy` (``"smolvla"``,
``"pi0"``, ``"pi05"``) or load one with :func:`snapflow_ros.policies.checkpoint.load_policy`.
Importing a backend package (e.g. ``snapflow_ros.policies.pi05``) registers its LeRobot policy
type (``snapflow_pi05``) with LeRobot.
"""
