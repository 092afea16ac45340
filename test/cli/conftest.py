# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the command-line tests: demo bags and two tiny trained runs (teacher, SnapFlow)."""

from evaluation_fixtures import demo_bags, one_torch_thread, trained_runs  # noqa: F401
