# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""`snapflow lifecycle` / `snapflow param` work like `ros2 lifecycle` / `ros2 param`."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros

NODE = "snapflow_heartbeat"


def _snapflow(*args, env):
    return subprocess.run([sys.executable, "-m", "snapflow_ros.cli", *args], env=env,
                          capture_output=True, text=True, timeout=90)


def test_lifecycle_and_param_commands(start_node, graph_client, ros_env):
    start_node("snapflow_ros.nodes.heartbeat_node", params={"rate_hz": 20.0})
    assert graph_client.wait_for_node(NODE, timeout=30)

    assert _snapflow("lifecycle", "get", NODE, env=ros_env).stdout.strip() == "unconfigured"
    result = _snapflow("lifecycle", "set", NODE, "activate", env=ros_env)
    assert result.returncode == 1 and "failed" in result.stdout
    assert _snapflow("lifecycle", "set", NODE, "configure", env=ros_env).returncode == 0
    assert _snapflow("lifecycle", "get", NODE, env=ros_env).stdout.strip() == "inactive"

    assert _snapflow("param", "get", NODE, "rate_hz", env=ros_env).stdout.strip() == "20.0"
    assert _snapflow("param", "set", NODE, "rate_hz", "7.5", env=ros_env).returncode == 0
    assert _snapflow("param", "get", NODE, "rate_hz", env=ros_env).stdout.strip() == "7.5"


def test_missing_node_is_reported(ros_env):
    result = _snapflow("lifecycle", "get", "no_such_node", "--timeout", "1", env=ros_env)
    assert result.returncode == 1 and "not found" in result.stderr
