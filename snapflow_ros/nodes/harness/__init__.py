# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Harnesses that start and drive nodes: the ROS side of the benchmarks and evaluations.

``closed_loop`` (the policy node drives the simulated robot, episode by episode),
``live_replay`` (held-out bags played into the policy node, its commands recorded) and
``latency_publish`` (the ROS publish stage of ``snapflow bench latency``). What they record is
scored, summarised and plotted without ROS by the modules of the same names in
:mod:`snapflow_ros.evaluation`.
"""
