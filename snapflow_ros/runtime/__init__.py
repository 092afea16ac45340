# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS-free deployment logic of the policy node.

Observation buffering and image decoding, the action chunk scheduler, the safety guard and the
latency tracker are plain Python and numpy. Only :mod:`snapflow_ros.runtime.policy_runner`
imports torch; import it lazily.
"""
