# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bringup``: the node's arguments, and that stopping bringup stops the node.

systemd and ``docker stop`` send SIGTERM, a closing terminal SIGHUP, Ctrl-C SIGINT; each must
stop the policy node bringup started, and so must bringup being killed outright.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoint_fixtures import write_tiny_checkpoint
from process_fixtures import alive, wait_gone

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.nodes.bringup import NODE_NAME, add_arguments_bringup, bringup_node_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments_bringup(parser)
    return parser.parse_args(list(argv))


def test_remaps_and_parameters_go_after_ros_args_in_their_long_form(tmp_path):
    args = _parse("--checkpoint", str(tmp_path / "run"), "--params-file", "my.yaml",
                  "--device", "cpu", "-p", "n_act:=5", "-p", "camera_topics:=[cam/a]",
                  "-r", "joint_states:=/arm/joint_states", "--remap", "joint_trajectory:=/cmd")
    node_args = bringup_node_args(args)
    assert node_args[:3] == ["--ros-args", "--params-file", "my.yaml"]
    pairs = list(zip(node_args[3::2], node_args[4::2], strict=True))
    assert ("--remap", "joint_states:=/arm/joint_states") in pairs
    assert ("--remap", "joint_trajectory:=/cmd") in pairs
    assert ("--param", "n_act:=5") in pairs and ("--param", "device:=cpu") in pairs
    assert ("--param", "camera_topics:=[cam/a]") in pairs
    assert ("--param", f"checkpoint:={(tmp_path / 'run').resolve()}") in pairs
    assert {flag for flag, _ in pairs} == {"--param", "--remap"}
    with pytest.raises(ConfigError, match="remap 'joint_states' must look like NAME:=VALUE"):
        bringup_node_args(_parse("--checkpoint", "x", "-r", "joint_states"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), image_size=32)


def _start_bringup(checkpoint: Path, env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    """Run ``snapflow bringup`` until the node is active; returns it and the node's pid."""
    sink = open(log, "w")  # noqa: SIM115 - the process writes to it until it ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapflow_ros.cli", "bringup", "--checkpoint", str(checkpoint),
         "--device", "cpu", "-p", "camera_topics:=[camera/image_raw]",
         "-r", "joint_trajectory:=bringup_test/joint_trajectory"],
        env={**env, "OMP_NUM_THREADS": "1"}, stdout=sink, stderr=subprocess.STDOUT)
    sink.close()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = log.read_text()
        if f"{NODE_NAME} is active" in text:
            return proc, int(re.search(r"started \w+ \(pid (\d+)", text).group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"bringup did not activate the node:\n{log.read_text()[-4000:]}")


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_stopping_bringup_stops_the_policy_node(checkpoint, ros_env, tmp_path, how):
    proc, node_pid = _start_bringup(checkpoint, ros_env, tmp_path / "bringup.log")
    try:
        assert alive(node_pid)
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=60)
        log = (tmp_path / "bringup.log").read_text()
        if how == "SIGKILL":
            assert code == -signal.SIGKILL
        else:
            assert code == 0, log[-3000:]  # the clean path: the node was stopped first
        assert wait_gone(node_pid, 20), f"the policy node outlived bringup's {how}:\n{log}"
    finally:
        if proc.poll() is None:
            proc.kill()
        if alive(node_pid):
            os.kill(node_pid, signal.SIGKILL)
