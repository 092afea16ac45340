# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Evaluation: action MSE, spread and latency per step count, reports and plots.

``metrics`` (numpy metrics of predicted vs recorded chunks), ``offline`` (checkpoints scored on
held-out episodes), ``report`` (markdown table and PNG plots), ``eval_cli`` (``snapflow
eval``), ``bag_replay`` (the ROS-free schedule of the bag player node) and ``live_replay``
(held-out bags played into the running policy node). Importing this package loads nothing: the
simulator environment can use ``bag_replay`` and ``metrics`` without torch.
"""
