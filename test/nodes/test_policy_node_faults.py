# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fault injection against a running policy node (docs/reliability.md lists every case).

One node runs through all input faults in sequence. For each: the node stays up, no command
carries a NaN or leaves the joint limits, the fault is counted on /diagnostics under its reason,
and commands resume once good input returns.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from checkpoint_fixtures import JOINTS, write_tiny_checkpoint
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "snapflow_policy"
SIZE = 32
LIMIT = 0.1  # |position| limit of every joint; the policy's mean action lies outside it


class FaultyRobot:
    """A robot whose camera (raw + compressed) and joint-state messages can be corrupted."""

    def __init__(self, client):
        self.client = client
        node = client.node
        self.raw_pub = node.create_publisher(Image, "camera/image_raw", 10)
        self.compressed_pub = node.create_publisher(CompressedImage, "wrist/compressed", 10)
        self.joint_pub = node.create_publisher(JointState, "joint_states", 10)
        self.commands: list[JointTrajectory] = []
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(JointTrajectory, "joint_trajectory", self.commands.append, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.raw_fault = self.compressed_fault = self.joint_fault = None
        self.cameras_on = self.joints_on = True
        self.burst = 1
        rgb = np.full((SIZE, SIZE, 3), 120, np.uint8)
        self.jpeg = cv2.imencode(".jpg", rgb)[1].tobytes()
        self.rgb = rgb.tobytes()
        node.create_timer(1 / 30, self._publish_cameras)
        node.create_timer(1 / 100, self._publish_joints)

    def _stamp(self):
        return self.client.node.get_clock().now().to_msg()

    def _publish_cameras(self):
        if not self.cameras_on:
            return
        raw = Image(height=SIZE, width=SIZE, encoding="rgb8", step=3 * SIZE, data=self.rgb)
        raw.header.stamp = self._stamp()
        compressed = CompressedImage(format="jpeg", data=self.jpeg)
        compressed.header.stamp = self._stamp()
        if self.raw_fault:
            self.raw_fault(raw)
        if self.compressed_fault:
            self.compressed_fault(compressed)
        self.raw_pub.publish(raw)
        self.compressed_pub.publish(compressed)

    def _publish_joints(self):
        if not self.joints_on:
            return
        for _ in range(self.burst):
            msg = JointState(name=list(JOINTS), position=[0.0, 0.0, 0.0])
            msg.header.stamp = self._stamp()
            if self.joint_fault:
                self.joint_fault(msg)
            self.joint_pub.publish(msg)

    def diagnostics_values(self) -> dict:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith(NODE):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def rejected(self) -> dict:
        return json.loads(self.diagnostics_values().get("inputs_rejected", "{}"))

    def clear_faults(self):
        self.raw_fault = self.compressed_fault = self.joint_fault = None
        self.cameras_on = self.joints_on = True
        self.burst = 1


def _assert_commands_safe(commands):
    for trajectory in commands:
        assert list(trajectory.joint_names) == list(JOINTS)
        for point in trajectory.points:
            assert len(point.positions) == len(JOINTS)
            for value in point.positions:
                assert math.isfinite(value) and -LIMIT - 1e-9 <= value <= LIMIT + 1e-9, value


def _set_stamp(msg, seconds):
    msg.header.stamp.sec = int(seconds)
    msg.header.stamp.nanosec = int((seconds % 1) * 1e9)


def _short_image(msg):
    msg.data = bytes(msg.data)[: SIZE * 3 * 5]


def _zero_image(msg):
    msg.height = msg.width = msg.step = 0
    msg.data = b""


def _small_image(msg):
    msg.height = msg.width = 8
    msg.step = 24
    msg.data = bytes(8 * 8 * 3)


def _bad_jpeg(msg):
    msg.data = b"\xff\xd8 not a jpeg"


# (case, input, rejection reason reported on /diagnostics, how to break it)
INPUT_FAULTS = [
    ("wrong encoding", "raw", "unsupported_encoding",
     lambda r: setattr(r, "raw_fault", lambda m: setattr(m, "encoding", "yuv422"))),
    ("wrong size", "raw", "wrong_size", lambda r: setattr(r, "raw_fault", _small_image)),
    ("truncated data", "raw", "truncated_data", lambda r: setattr(r, "raw_fault", _short_image)),
    ("zero size", "raw", "zero_size", lambda r: setattr(r, "raw_fault", _zero_image)),
    ("CompressedImage that does not decode", "compressed", "decode_failed",
     lambda r: setattr(r, "compressed_fault", _bad_jpeg)),
    ("joint state with NaN", "joint", "non_finite_position",
     lambda r: setattr(r, "joint_fault", lambda m: m.position.__setitem__(0, math.nan))),
    ("joint state with inf", "joint", "non_finite_position",
     lambda r: setattr(r, "joint_fault", lambda m: m.position.__setitem__(2, math.inf))),
    ("missing joint", "joint", "missing_joint",
     lambda r: setattr(r, "joint_fault", lambda m: (m.name.pop(), m.position.pop()))),
    ("duplicate joint names", "joint", "duplicate_name",
     lambda r: setattr(r, "joint_fault", lambda m: m.name.__setitem__(1, m.name[0]))),
    ("name / position length mismatch", "joint", "length_mismatch",
     lambda r: setattr(r, "joint_fault", lambda m: m.position.append(0.0))),
    ("timestamp in the future", "joint", "stamp_in_future",
     lambda r: setattr(r, "joint_fault", lambda m: _set_stamp(
         m, r.client.node.get_clock().now().nanoseconds * 1e-9 + 30.0))),
]


INPUT_NAMES = {"raw": "camera/top", "compressed": "camera/wrist", "joint": "joint_state"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("faults"), camera_keys=("top", "wrist"),
                                 image_size=SIZE, action_mean=0.3, action_std=0.05)


@pytest.fixture
def running_node(start_node, graph_client, checkpoint):
    proc = start_node("snapflow_ros.nodes.policy_node", params={
        "checkpoint": str(checkpoint), "device": "cpu", "control_rate_hz": 20.0,
        "camera_topics": ["camera/image_raw", "wrist/compressed"],
        "camera_keys": ["top", "wrist"], "camera_transports": ["raw", "compressed"],
        "expected_image_height": SIZE, "expected_image_width": SIZE,
        "n_act": 4, "prefetch_threshold": 1, "max_input_age_s": 0.3,
        "limit_joint_names": list(JOINTS), "lower_limits": [-LIMIT] * 3,
        "upper_limits": [LIMIT] * 3, "max_delta_per_tick": [0.02],
        "first_command_max_distance": 0.5, "diagnostics_period_s": 0.2})
    assert graph_client.wait_for_node(NODE, 30), proc.log_text()
    robot = FaultyRobot(graph_client)
    assert graph_client.change_lifecycle_state(NODE, "configure"), proc.log_text()
    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.spin_until(lambda: len(robot.commands) >= 3, 30), proc.log_text()
    return proc, robot


def test_input_faults_are_rejected_reported_and_recovered(graph_client, running_node):
    proc, robot = running_node
    for case, source, reason, inject in INPUT_FAULTS:
        before = robot.rejected()
        inject(robot)
        graph_client.spin_for(1.0)
        assert proc.running, f"{case}: node died\n{proc.log_text()[-3000:]}"
        graph_client.spin_until(lambda b=before: robot.rejected() != b, 3)
        after = robot.rejected()
        changed = {name: {k: v - before.get(name, {}).get(k, 0) for k, v in reasons.items()
                          if v != before.get(name, {}).get(k, 0)}
                   for name, reasons in after.items()}
        changed = {k: v for k, v in changed.items() if v}
        assert INPUT_NAMES[source] in changed, f"{case}: no rejection of {source} reported"
        assert reason in changed[INPUT_NAMES[source]], (case, changed)
        robot.clear_faults()
        count = len(robot.commands)
        assert graph_client.spin_until(lambda c=count: len(robot.commands) >= c + 2, 15), (
            f"{case}: commands did not resume")
    _assert_commands_safe(robot.commands)
    guard = json.loads(robot.diagnostics_values()["guard"])
    assert guard.get("clamped", 0) > 0, "the limits were never exercised"
    assert "rejected" in proc.log_text()


def test_stopped_inputs_bursts_and_out_of_order_stamps(graph_client, running_node):
    proc, robot = running_node
    # A camera that stops and restarts; a joint-state publisher that dies and comes back.
    for attribute in ("cameras_on", "joints_on"):
        setattr(robot, attribute, False)
        graph_client.spin_for(0.8)
        count = len(robot.commands)
        graph_client.spin_for(1.0)
        assert len(robot.commands) <= count + 1, f"{attribute}: commanded on stale inputs"
        assert robot.diagnostics_values().get("stale") == "true"
        setattr(robot, attribute, True)
        assert graph_client.spin_until(lambda c=count: len(robot.commands) >= c + 3, 15)
    # Bursts far above the expected rate (20 joint states per 10 ms tick).
    robot.burst = 20
    graph_client.spin_for(2.0)
    robot.burst = 1
    count = len(robot.commands)
    assert graph_client.spin_until(lambda: len(robot.commands) >= count + 2, 15)
    # Timestamps out of order: every other message a second in the past.
    flip = {"n": 0}

    def backwards(msg):
        flip["n"] += 1
        if flip["n"] % 2:
            _set_stamp(msg, robot.client.node.get_clock().now().nanoseconds * 1e-9 - 1.0)

    before = robot.rejected().get("joint_state", {}).get("stamp_out_of_order", 0)
    robot.joint_fault = backwards
    graph_client.spin_for(1.0)
    robot.clear_faults()
    graph_client.spin_for(0.5)
    assert robot.rejected()["joint_state"]["stamp_out_of_order"] > before
    assert proc.running
    _assert_commands_safe(robot.commands)


def test_parameter_and_lifecycle_abuse(graph_client, running_node, tmp_path):
    proc, robot = running_node
    # Wrong types and out-of-range values are refused with a reason; nothing changes.
    for name, value in (("n_act", "five"), ("n_act", 0), ("n_act", 99), ("num_steps", 3.5),
                        ("max_input_age_s", -1.0), ("blending", "cubic"),
                        ("dry_run", "yes")):
        ok, reason = graph_client.set_parameters(NODE, {name: value})[name]
        assert not ok, (name, value)
    assert graph_client.get_parameters(NODE, ["n_act"])["n_act"] == 4
    # Invalid transition orders are refused; quick repeats leave a consistent state.
    assert not graph_client.change_lifecycle_state(NODE, "configure")
    assert not graph_client.change_lifecycle_state(NODE, "cleanup")
    for _ in range(3):
        assert graph_client.change_lifecycle_state(NODE, "deactivate")
        assert not graph_client.change_lifecycle_state(NODE, "deactivate")
        assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.lifecycle_state(NODE) == "active"
    count = len(robot.commands)
    assert graph_client.spin_until(lambda: len(robot.commands) >= count + 2, 15)
    assert graph_client.change_lifecycle_state(NODE, "deactivate")
    assert graph_client.change_lifecycle_state(NODE, "cleanup")
    # Checkpoints that are missing, truncated or from another robot fail configure cleanly.
    truncated = write_tiny_checkpoint(tmp_path / "truncated", camera_keys=("top", "wrist"),
                                      image_size=SIZE)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    other_robot = write_tiny_checkpoint(tmp_path / "other", joint_names=("x", "y", "z"),
                                        camera_keys=("top", "wrist"), image_size=SIZE)
    for bad in (tmp_path / "missing", truncated, other_robot):
        assert graph_client.set_parameters(NODE, {"checkpoint": str(bad)})["checkpoint"][0]
        assert not graph_client.change_lifecycle_state(NODE, "configure"), bad
        assert graph_client.lifecycle_state(NODE) == "unconfigured"
        assert proc.running
    _assert_commands_safe(robot.commands)
