# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Flow-matching policies: the common interface, our compact policy and LeRobot backends."""
