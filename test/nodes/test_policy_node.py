# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node in a real process, driven over its lifecycle and parameter services."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from checkpoint_fixtures import JOINTS, write_tiny_checkpoint
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros

NODE = "snapflow_policy"
IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), image_size=IMAGE_SIZE)


class FakeRobot:
    """Publishes camera images (30 Hz) and joint states (100 Hz); records commands."""

    def __init__(self, client):
        self.client = client
        node = client.node
        self.image_pub = node.create_publisher(Image, "camera/image_raw", 10)
        self.joint_pub = node.create_publisher(JointState, "joint_states", 10)
        self.trajectories: list[JointTrajectory] = []
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(JointTrajectory, "joint_trajectory", self.trajectories.append, 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.cameras_on = True
        self.joints_on = True
        self.position = [0.0, 0.0, 0.0]
        self.image_override = None
        self.joint_override = None
        node.create_timer(1 / 30, self._publish_image)
        node.create_timer(1 / 100, self._publish_joints)

    def _publish_image(self):
        if not self.cameras_on:
            return
        msg = Image(height=IMAGE_SIZE, width=IMAGE_SIZE, encoding="rgb8", step=IMAGE_SIZE * 3)
        msg.header.stamp = self.client.node.get_clock().now().to_msg()
        msg.data = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 90, np.uint8).tobytes()
        if self.image_override is not None:
            self.image_override(msg)
        self.image_pub.publish(msg)

    def _publish_joints(self):
        if not self.joints_on:
            return
        msg = JointState(name=["extra_joint", *reversed(JOINTS)])
        msg.position = [5.0, *reversed(self.position)]
        msg.header.stamp = self.client.node.get_clock().now().to_msg()
        if self.joint_override is not None:
            self.joint_override(msg)
        self.joint_pub.publish(msg)

    def last_diagnostics(self) -> dict:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith(NODE):
                    return {kv.key: kv.value for kv in status.values}
        return {}


@pytest.fixture
def robot(graph_client):
    return FakeRobot(graph_client)


def _start(start_node, graph_client, checkpoint, **params):
    # 10 Hz control: an action is skipped only if inference takes over half a tick (50 ms).
    defaults = {"checkpoint": str(checkpoint), "camera_topics": ["camera/image_raw"],
                "control_rate_hz": 10.0, "n_act": 5, "prefetch_threshold": 0,
                "blending": "none", "device": "cpu",
                "max_delta_per_tick": [0.5], "first_command_max_distance": 1.0}
    defaults.update(params)
    proc = start_node("snapflow_ros.nodes.policy_node", params=defaults)
    assert graph_client.wait_for_node(NODE, timeout=30), proc.log_text()
    return proc


def _points(trajectory):
    return [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in trajectory.points]


def test_lifecycle_commands_and_runtime_parameters(start_node, graph_client, robot, checkpoint):
    proc = _start(start_node, graph_client, checkpoint)
    graph_client.spin_for(0.5)
    assert robot.trajectories == [], "published while unconfigured"
    assert graph_client.change_lifecycle_state(NODE, "configure"), proc.log_text()
    assert graph_client.lifecycle_state(NODE) == "inactive"
    graph_client.spin_for(0.5)
    assert robot.trajectories == [], "published while inactive"

    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 6, 20), proc.log_text()
    for trajectory in robot.trajectories[:6]:
        assert list(trajectory.joint_names) == list(JOINTS)
        times = _points(trajectory)
        # n_act points, less any whose time passed while the model ran (skipped by timestamp).
        assert 1 <= len(times) <= 5, times
        assert all(b > a for a, b in zip(times, times[1:])), times
        assert times[0] > 0
        for point in trajectory.points:
            assert all(math.isfinite(v) and abs(v) <= 0.5 for v in point.positions)
    full = [len(t.points) == 5 for t in robot.trajectories[:6]]
    assert sum(full) >= 4, [len(t.points) for t in robot.trajectories[:6]]

    # n_act and num_steps apply at runtime, without restart.
    result = graph_client.set_parameters(NODE, {"n_act": 8, "num_steps": 4})
    assert result["n_act"][0] and result["num_steps"][0], result
    count = len(robot.trajectories)
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= count + 4, 20)
    assert max(len(t.points) for t in robot.trajectories[count + 1:]) == 8

    # Out-of-range and read-only changes are refused with a reason.
    ok, reason = graph_client.set_parameters(NODE, {"n_act": 11})["n_act"]
    assert not ok and "chunk size" in reason
    ok, reason = graph_client.set_parameters(NODE, {"num_steps": 0})["num_steps"]
    assert not ok and reason
    ok, reason = graph_client.set_parameters(NODE, {"checkpoint": "/elsewhere"})["checkpoint"]
    assert not ok and "read-only" in reason
    assert graph_client.get_parameters(NODE, ["n_act"])["n_act"] == 8

    # Deactivate holds the position in force and then publishes nothing.
    assert graph_client.change_lifecycle_state(NODE, "deactivate")
    graph_client.spin_for(0.3)
    hold = robot.trajectories[-1]
    assert len(hold.points) == 1 and all(abs(v) <= 0.5 for v in hold.points[0].positions)
    count = len(robot.trajectories)
    graph_client.spin_for(0.5)
    assert len(robot.trajectories) == count, "published while inactive"

    assert graph_client.change_lifecycle_state(NODE, "cleanup")
    assert graph_client.lifecycle_state(NODE) == "unconfigured"
    assert graph_client.change_lifecycle_state(NODE, "shutdown")


def test_stale_inputs_stop_commands_and_fresh_inputs_resume(start_node, graph_client, robot,
                                                            checkpoint):
    _start(start_node, graph_client, checkpoint, max_input_age_s=0.2)
    assert graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 3, 20)

    robot.cameras_on = False
    graph_client.spin_for(0.6)  # stale after 0.2 s, then one hold command
    count = len(robot.trajectories)
    graph_client.spin_for(1.0)
    assert len(robot.trajectories) <= count + 1, "kept commanding on stale inputs"
    assert graph_client.spin_until(lambda: robot.last_diagnostics().get("stale") == "true", 5)

    robot.cameras_on = True
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= count + 5, 20)


@pytest.mark.parametrize("fault", ["nan_joint", "truncated_image", "wrong_encoding",
                                   "wrong_size"])
def test_bad_input_is_reported_and_never_commands(start_node, graph_client, robot, checkpoint,
                                                  fault):
    _start(start_node, graph_client, checkpoint, expected_image_height=IMAGE_SIZE,
           expected_image_width=IMAGE_SIZE)

    if fault == "nan_joint":
        robot.joint_override = lambda msg: msg.position.__setitem__(1, float("nan"))
    elif fault == "truncated_image":
        robot.image_override = lambda msg: setattr(msg, "data", bytes(msg.data)[:100])
    elif fault == "wrong_encoding":
        robot.image_override = lambda msg: setattr(msg, "encoding", "yuv422_weird")
    else:
        def smaller(msg):
            msg.height = msg.width = 16
            msg.step = 48
            msg.data = np.zeros((16, 16, 3), np.uint8).tobytes()
        robot.image_override = smaller

    assert graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.change_lifecycle_state(NODE, "activate")
    graph_client.spin_for(1.5)
    assert robot.trajectories == [], f"commanded from bad input ({fault})"
    assert graph_client.spin_until(
        lambda: robot.last_diagnostics().get("inputs_rejected", "{}") != "{}", 5)
    rejected = json.loads(robot.last_diagnostics()["inputs_rejected"])
    assert sum(sum(reasons.values()) for reasons in rejected.values()) > 0

    # Good input again: the node recovers.
    robot.joint_override = robot.image_override = None
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 3, 20)


def test_bad_checkpoint_fails_configure_then_a_good_one_works(start_node, graph_client, robot,
                                                             checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    proc = _start(start_node, graph_client, broken)
    assert not graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.lifecycle_state(NODE) == "unconfigured"
    assert proc.running
    assert "configure failed" in proc.log_text()

    mismatched = write_tiny_checkpoint(tmp_path / "other_robot", camera_keys=("wrist",),
                                       image_size=IMAGE_SIZE)
    assert graph_client.set_parameters(NODE, {"checkpoint": str(mismatched)})["checkpoint"][0]
    assert not graph_client.change_lifecycle_state(NODE, "configure")
    assert "camera" in proc.log_text()

    assert graph_client.set_parameters(NODE, {"checkpoint": str(checkpoint)})["checkpoint"][0]
    assert graph_client.change_lifecycle_state(NODE, "configure"), proc.log_text()
    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 2, 20)


def test_stream_mode_dry_run_and_stop_on_deactivate(start_node, graph_client, robot, checkpoint):
    _start(start_node, graph_client, checkpoint, output_mode="stream", blending="linear",
           prefetch_threshold=2, deactivate_behavior="stop", dry_run=True)
    assert graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.change_lifecycle_state(NODE, "activate")
    graph_client.spin_for(1.5)
    assert robot.trajectories == [], "dry_run published a command"
    assert graph_client.spin_until(
        lambda: json.loads(robot.last_diagnostics().get("guard", "{}")).get("dry_run", 0) > 0, 5)

    assert graph_client.set_parameters(NODE, {"dry_run": False})["dry_run"][0]
    # 10 Hz stream: one point per control tick.
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 10, 20)
    assert all(len(t.points) == 1 for t in robot.trajectories)
    assert all(list(t.joint_names) == list(JOINTS) for t in robot.trajectories)
    stamps = [t.header.stamp.sec + 1e-9 * t.header.stamp.nanosec for t in robot.trajectories]
    gaps = np.diff(stamps)
    assert np.all(gaps > 0) and np.median(gaps) == pytest.approx(0.1, abs=0.03)

    assert graph_client.change_lifecycle_state(NODE, "deactivate")
    graph_client.spin_for(0.3)
    count = len(robot.trajectories)
    graph_client.spin_for(0.6)
    assert len(robot.trajectories) == count, "deactivate_behavior=stop kept publishing"


def test_under_sim_time_a_still_clock_gets_the_last_trajectory_again(start_node, graph_client,
                                                                      checkpoint):
    # A lockstep simulator only steps on commands: a trajectory it missed must come again.
    from rosgraph_msgs.msg import Clock

    node = graph_client.node
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    image_pub = node.create_publisher(Image, "camera/image_raw", 10)
    joint_pub = node.create_publisher(JointState, "joint_states", 10)
    trajectories: list[JointTrajectory] = []
    node.create_subscription(JointTrajectory, "joint_trajectory", trajectories.append, 50)
    proc = _start(start_node, graph_client, checkpoint, use_sim_time=True)
    assert graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.change_lifecycle_state(NODE, "activate")

    stamp = Clock().clock
    stamp.sec = 3

    def publish_observation():
        clock_pub.publish(Clock(clock=stamp))
        image = Image(height=IMAGE_SIZE, width=IMAGE_SIZE, encoding="rgb8", step=IMAGE_SIZE * 3)
        image.header.stamp = stamp
        image.data = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 90, np.uint8).tobytes()
        image_pub.publish(image)
        joints = JointState(name=list(JOINTS), position=[0.0] * len(JOINTS))
        joints.header.stamp = stamp
        joint_pub.publish(joints)

    timer = node.create_timer(0.2, publish_observation)  # same simulated instant, repeated
    assert graph_client.spin_until(lambda: trajectories, 20), proc.log_text()
    first = trajectories[0]
    assert first.header.stamp.sec == 3
    assert graph_client.spin_until(lambda: len(trajectories) >= 2, 5), proc.log_text()
    again = trajectories[1]
    assert again.header.stamp == first.header.stamp
    assert [list(p.positions) for p in again.points] == [list(p.positions) for p in first.points]
    assert _points(again) == _points(first)
    node.destroy_timer(timer)
