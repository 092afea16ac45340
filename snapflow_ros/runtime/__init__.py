# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS-free deployment logic: observation buffer, chunk scheduler, safety guard, latency."""
