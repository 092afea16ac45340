# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures: an isolated ROS 2 graph per test session and node processes."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import pytest

from snapflow_ros.nodes.node_process import NodeProcess, isolated_ros_environment, ros_args

REPO_ROOT = Path(__file__).resolve().parents[1]

# Each run gets its own domain, the shared-memory transport and its own log dir, set before any
# rclpy import so that the test process and every node it starts share one isolated graph.
_ROS_ENV = isolated_ros_environment(domain_id=random.randint(1, 100))
for _key in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_LOG_DIR", "HOME"):
    os.environ[_key] = _ROS_ENV[_key]
os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)

# A suite started under nohup inherits SIGHUP ignored, and our commands rightly keep an ignored
# SIGHUP ignored; the tests that send SIGHUP to the processes they start need the default back.
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment (domain, transport, log dir) that node processes of this run must use."""
    return dict(os.environ)


@pytest.fixture
def graph_client():
    """A :class:`GraphClient` in the test process, on the run's isolated ROS graph."""
    from snapflow_ros.nodes.graph_client import GraphClient

    client = GraphClient(f"test_client_{os.getpid()}")
    yield client
    client.close()


@pytest.fixture
def start_node(ros_env, tmp_path):
    """Start a node module as a real process; every process is stopped at teardown."""
    started: list[NodeProcess] = []

    def start(module: str, *, params: dict | None = None, params_file: str | None = None,
              remaps: dict | None = None, python: str | None = None,
              name: str | None = None, extra_args: list[str] | None = None) -> NodeProcess:
        args = list(extra_args or []) + ros_args(params=params, params_file=params_file,
                                                 remaps=remaps)
        label = name or module.rsplit(".", 1)[-1]
        proc = NodeProcess(module, args=args, env=ros_env, python=python or sys.executable,
                           log_path=tmp_path / f"{label}_{len(started)}.log", name=label)
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop(timeout=10)
