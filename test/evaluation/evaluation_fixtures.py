# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared settings of the evaluation tests and an in-process ``snapflow`` runner."""

from __future__ import annotations

import contextlib
import io

# The fixture runs' held-out split: 2 of 5 episodes, seed 3 (not the evaluation defaults).
VAL_FRACTION = 0.4
SPLIT_SEED = 3
TINY_POLICY = ("chunk_size=5", "cnn_channels=[4,8]", "hidden_dim=16", "num_layers=1",
               "num_heads=2", "time_encoding_dim=8", "target_time_hidden_dim=8",
               "num_keypoints=4")
TOPIC_ARGS = ["--camera-topic", "/camera/top/image_raw", "--action-topic",
              "/leader/joint_states", "--action-type", "joint_state"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``snapflow ARGV`` in-process: (exit code, stdout, stderr)."""
    from snapflow_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
