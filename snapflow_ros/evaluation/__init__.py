# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Evaluation without ROS: metrics, offline evaluation, benchmark results, reports and plots.

``metrics`` (numpy metrics of predicted vs recorded chunks, the one per-sample MSE),
``offline`` (checkpoints scored on held-out episodes), ``report`` (markdown table and PNG
plots), ``closed_loop`` and ``live_replay`` (the settings and results of the runs that the
harnesses in :mod:`snapflow_ros.nodes.harness` drive over ROS 2: success intervals, summaries,
tables, plots, scoring of received trajectories), ``latency_bench`` and ``latency_stages`` (the
latency benchmark, timed on the runtime's own stages). No module here imports rclpy (a test
checks it), and importing this package loads nothing.
"""
