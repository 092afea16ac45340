# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""From rosbag2 recordings to training samples: reading, time alignment, episodes."""
