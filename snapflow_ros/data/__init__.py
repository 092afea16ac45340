# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""From rosbag2 recordings to training samples.

``config`` (which topics), ``bag_reader`` (decode bags), ``alignment`` (resample on the control
grid, cut episodes), ``episodes`` (load episodes with a summary), ``episode_cache`` (decoded
episodes on disk), ``dataset`` (torch ``ChunkDataset``, splits, normalisation stats),
``lerobot_export`` (write a LeRobotDataset v3) and ``bag_replay`` (what the bag player node
plays, and when). Everything but ``dataset`` and
``lerobot_export`` is free of torch, so the simulator environment can import it.
"""
