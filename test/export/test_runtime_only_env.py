# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The exported model runs in the policy node where only the runtime is installed.

Runs ``scripts/check_runtime_only_env.sh``: a fresh virtual environment with numpy, onnxruntime,
opencv, pyyaml, the ROS 2 wheels and this package (no torch, LeRobot or transformers) starts the
policy node on a tiny export, drives its lifecycle and receives a JointTrajectory (~1.5 min).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ros]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_runtime_only_env.sh"
NO_PACKAGE_INDEX = 3  # the script's exit code when pip cannot install the runtime packages


def test_the_export_runs_in_the_policy_node_without_torch_lerobot_or_transformers(tmp_path):
    pytest.importorskip("onnxscript")  # the export side (the policy environment) needs it
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["POLICY_PYTHON"] = sys.executable  # exports with this test run's interpreter
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "work")], env=env,
                          capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    if done.returncode == NO_PACKAGE_INDEX:
        pytest.skip(f"pip could not reach a package index: {output[-400:]}")
    assert done.returncode == 0, output[-4000:]
    assert "torch, lerobot, transformers and safetensors are not installed" in output
    assert "PASSED" in output
