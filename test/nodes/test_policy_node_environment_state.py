# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node with an environment-state input (object poses), in a real process."""

from __future__ import annotations

import json

import pytest
from checkpoint_fixtures import write_tiny_checkpoint
from geometry_msgs.msg import Pose, PoseArray
from test_policy_node import IMAGE_SIZE, NODE, FakeRobot

pytestmark = pytest.mark.ros

POSE_NAMES = tuple(f"object_poses/0/{f}" for f in ("x", "y", "z", "qx", "qy", "qz", "qw"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("env_ckpt"), image_size=IMAGE_SIZE,
                                 environment_state_names=POSE_NAMES)


class PosePublisher:
    """Publishes one object pose at 50 Hz; ``bad`` makes its x NaN."""

    def __init__(self, client):
        self.client = client
        self.pub = client.node.create_publisher(PoseArray, "object_poses", 10)
        self.on = False
        self.bad = False
        client.node.create_timer(1 / 50, self._publish)

    def _publish(self):
        if not self.on:
            return
        msg = PoseArray()
        msg.header.stamp = self.client.node.get_clock().now().to_msg()
        pose = Pose()
        pose.position.x = float("nan") if self.bad else 0.1
        pose.orientation.w = 1.0
        msg.poses = [pose]
        self.pub.publish(msg)


def _start(start_node, graph_client, checkpoint, **params):
    defaults = {"checkpoint": str(checkpoint), "camera_topics": ["camera/image_raw"],
                "environment_state_topics": ["object_poses"], "control_rate_hz": 10.0,
                "n_act": 5, "prefetch_threshold": 0, "blending": "none", "device": "cpu",
                "max_delta_per_tick": [0.5], "first_command_max_distance": 1.0,
                "max_input_age_s": 0.3}
    defaults.update(params)
    proc = start_node("snapflow_ros.nodes.policy_node", params=defaults)
    assert graph_client.wait_for_node(NODE, timeout=30), proc.log_text()
    return proc


def test_commands_need_fresh_valid_poses(start_node, graph_client, checkpoint):
    robot, poses = FakeRobot(graph_client), PosePublisher(graph_client)
    proc = _start(start_node, graph_client, checkpoint)
    assert graph_client.change_lifecycle_state(NODE, "configure"), proc.log_text()
    assert graph_client.change_lifecycle_state(NODE, "activate")
    graph_client.spin_for(1.0)
    assert robot.trajectories == [], "commanded without the environment state"

    poses.on = True
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 3, 20), proc.log_text()

    poses.bad = True  # NaN poses are rejected, so the last good one goes stale: no commands
    graph_client.spin_for(0.8)
    count = len(robot.trajectories)
    graph_client.spin_for(1.0)
    assert len(robot.trajectories) <= count + 1, "kept commanding on rejected poses"
    assert graph_client.spin_until(lambda: "environment/object_poses" in json.loads(
        robot.last_diagnostics().get("inputs_rejected", "{}")), 5)

    poses.bad = False
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= count + 3, 20)


def test_topics_that_do_not_feed_the_checkpoint_fail_configure(start_node, graph_client,
                                                              checkpoint):
    proc = _start(start_node, graph_client, checkpoint, environment_state_topics=["mocap/cube"])
    assert not graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.lifecycle_state(NODE) == "unconfigured"
    assert "object_poses" in proc.log_text() and "cube" in proc.log_text()


def test_pose_topics_are_ignored_with_a_warning_for_an_image_only_checkpoint(
        start_node, graph_client, tmp_path):
    image_only = write_tiny_checkpoint(tmp_path / "image_only", image_size=IMAGE_SIZE)
    robot = FakeRobot(graph_client)
    proc = _start(start_node, graph_client, image_only)
    assert graph_client.change_lifecycle_state(NODE, "configure"), proc.log_text()
    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.spin_until(lambda: len(robot.trajectories) >= 2, 20), proc.log_text()
    assert "not subscribed" in proc.log_text()
