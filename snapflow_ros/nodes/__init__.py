# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Thin rclpy nodes and ROS clients; the only part of the package that imports rclpy."""
