# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The runtime loads without torch (and without rclpy) until a policy runner is made."""

import subprocess
import sys

TORCH_FREE = ("config", "image_decoding", "observation_buffer", "chunk_scheduler",
              "safety_guard", "latency_tracker", "inference_options", "policy_runner",
              "policy_controller")


def test_runtime_modules_import_neither_torch_nor_rclpy():
    imports = "; ".join(f"import snapflow_ros.runtime.{name}" for name in TORCH_FREE)
    code = (f"import sys; {imports}; "
            "print(sorted(m for m in ('torch', 'rclpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
