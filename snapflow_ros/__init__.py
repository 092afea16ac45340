# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""snapflow_ros: one-step flow-matching robot policies (SnapFlow) on ROS 2.

The package is split into a ROS-free core (policies, SnapFlow objective, samplers, data,
training, evaluation, runtime) and thin rclpy nodes in ``snapflow_ros.nodes``. Importing the
top-level package pulls in neither torch nor rclpy, so it loads in both environments.
"""

__version__ = "0.1.0"
