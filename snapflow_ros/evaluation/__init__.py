# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline evaluation: action MSE, spread and latency per step count, reports and plots."""
