# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training loop for the teacher and SnapFlow stages, with checkpoints."""
