# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The sim_robot node in its own process, driven over ROS 2 like a real robot."""

import json

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from snapflow_ros.sim.aloha_env import ALOHA_JOINT_NAMES, poses_in_ros_order

pytestmark = pytest.mark.ros

NODE = "sim_robot"
MODULE = "snapflow_ros.nodes.sim_robot_node"
TICK_NS = 20_000_000


class RobotClient:
    """Subscriptions and command publisher of a test talking to the sim robot."""

    def __init__(self, graph_client):
        self.graph = graph_client
        node = graph_client.node
        self.images, self.joints, self.statuses, self.clock = [], [], [], []
        self.poses = []
        node.create_subscription(Image, "camera/image_raw", self.images.append, 10)
        node.create_subscription(JointState, "joint_states", self.joints.append, 10)
        node.create_subscription(PoseArray, "object_poses", self.poses.append, 10)
        node.create_subscription(String, "episode/status",
                                 lambda m: self.statuses.append(json.loads(m.data)), 100)
        node.create_subscription(Clock, "/clock", self.clock.append, 10)
        self.commands = node.create_publisher(JointTrajectory, "joint_trajectory", 10)

    def wait(self, predicate, timeout=20.0):
        return self.graph.spin_until(predicate, timeout)

    def send(self, positions_per_point, stamp=None, names=ALOHA_JOINT_NAMES, first_tick=0):
        """Point i is to be reached ``first_tick + i`` ticks after ``stamp``."""
        msg = JointTrajectory(joint_names=list(names))
        if stamp is not None:
            msg.header.stamp = stamp
        for i, positions in enumerate(positions_per_point):
            msg.points.append(JointTrajectoryPoint(
                positions=[float(p) for p in positions],
                time_from_start=Duration(sec=0, nanosec=(first_tick + i) * TICK_NS)))
        self.commands.publish(msg)

    def reset(self):
        return self.graph.call_service(Trigger, f"/{NODE}/reset", Trigger.Request(), timeout=30.0)


def stamp_ns(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def start_robot(start_node, graph_client, **params):
    base = {"mode": "lockstep", "lockstep_timeout_s": 0.05, "seed": 7, "image_size": 128}
    proc = start_node(MODULE, params={**base, **params})
    assert graph_client.wait_for_node(NODE, timeout=40), proc.log_text()
    assert proc.wait_for_log("sim_robot ready", timeout=40), proc.log_text()
    return proc


def test_publishes_observations_follows_commands_resets_and_stops_on_sigint(
        start_node, graph_client):
    client = RobotClient(graph_client)
    proc = start_robot(start_node, graph_client)
    assert client.wait(lambda: client.images and client.joints and client.statuses), \
        proc.log_text()

    image = client.images[-1]
    assert (image.height, image.width, image.encoding) == (128, 128, "rgb8")
    pixels = np.frombuffer(image.data, np.uint8).reshape(128, 128, 3)
    assert pixels.std() > 10
    joints = client.joints[-1]
    assert list(joints.name) == list(ALOHA_JOINT_NAMES) and len(joints.position) == 14
    assert client.statuses[-1]["seed"] == 7 and client.statuses[-1]["task"] == "transfer_cube"
    # Lockstep publishes simulated time: 20 ms per step, the observations carry it.
    assert client.wait(lambda: len(client.clock) >= 3)
    assert client.clock[-1].clock.nanosec % TICK_NS == 0
    assert stamp_ns(client.joints[-1]) % TICK_NS == 0

    # A streamed command (one point, zero stamp: now) moves the left waist and is then held.
    target = np.array(client.joints[-1].position)
    target[0] = 0.4
    client.send([target])
    assert client.wait(lambda: client.joints[-1].position[0] > 0.3), \
        f"left waist at {client.joints[-1].position[0]}"

    # A partial command names only the joints it moves; the others hold. Its wall-clock stamp
    # is on another clock than lockstep's simulated time: it is executed on receipt.
    client.send([[-0.3]], names=["right_waist"], stamp=graph_client.node.get_clock().now().to_msg())
    assert client.wait(lambda: client.joints[-1].position[7] < -0.2)
    assert client.joints[-1].position[0] > 0.3

    reply = client.reset()
    assert reply.success, reply.message
    status = json.loads(reply.message)
    assert status["seed"] == 8 and status["step"] == 0 and status["episode"] == 2
    assert client.wait(lambda: abs(client.joints[-1].position[0]) < 0.05), "arms not reset"

    assert graph_client.set_parameters(NODE, {"seed": 42})["seed"][0]
    assert json.loads(client.reset().message)["seed"] == 42
    rejected = graph_client.set_parameters(NODE, {"image_size": 256})
    assert not rejected["image_size"][0], "image_size is fixed while the node runs"

    assert proc.stop(timeout=15) == 0, proc.log_text()


def test_lockstep_steps_only_for_commanded_ticks(start_node, graph_client):
    client = RobotClient(graph_client)
    proc = start_robot(start_node, graph_client, lockstep_timeout_s=60.0)
    client.wait(lambda: client.joints, timeout=5)  # may have been published before we matched
    reply = client.reset()  # a fresh first observation that this client surely receives
    assert reply.success
    assert client.wait(lambda: client.joints and json.loads(reply.message)["stamp_s"] * 1e9
                       <= stamp_ns(client.joints[-1]))
    first = client.joints[-1]
    graph_client.spin_for(1.0)
    assert client.joints[-1] is first, "lockstep advanced without a command"

    # A 10-point chunk answering an observation (point i: the position one tick after step i
    # starts): exactly 10 steps, then waits.
    hold = np.array(first.position)
    client.send([hold] * 10, stamp=first.header.stamp, first_tick=1)
    t0 = stamp_ns(first)
    assert client.wait(lambda: stamp_ns(client.joints[-1]) >= t0 + 10 * TICK_NS), proc.log_text()
    graph_client.spin_for(1.0)
    assert stamp_ns(client.joints[-1]) == t0 + 10 * TICK_NS
    assert client.statuses[-1]["step"] == 10

    # A policy loop: one streamed point per observation, one step each.
    for _ in range(5):
        last = client.joints[-1]
        client.send([hold], stamp=last.header.stamp)
        assert client.wait(lambda last=last: stamp_ns(client.joints[-1]) > stamp_ns(last))
    assert client.wait(lambda: client.statuses[-1]["step"] == 15)
    graph_client.spin_for(0.5)
    assert stamp_ns(client.joints[-1]) == t0 + 15 * TICK_NS
    assert proc.stop(timeout=15) == 0


def pose_rows(msg):
    """(N, 7) x y z qx qy qz qw of a PoseArray."""
    return np.array([[p.position.x, p.position.y, p.position.z, p.orientation.x,
                      p.orientation.y, p.orientation.z, p.orientation.w] for p in msg.poses])


def test_object_poses_carry_the_joint_states_stamp_and_the_physics_poses(
        start_node, graph_client, transfer_cube_sim):
    client = RobotClient(graph_client)
    proc = start_robot(start_node, graph_client, lockstep_timeout_s=60.0)
    client.wait(lambda: client.joints, timeout=5)
    reply = client.reset()
    assert reply.success
    seed = json.loads(reply.message)["seed"]
    reset_ns = round(json.loads(reply.message)["stamp_s"] * 1e9)
    assert client.wait(lambda: client.joints and stamp_ns(client.joints[-1]) >= reset_ns)
    first = client.joints[-1]
    hold = np.array(first.position)
    client.send([hold] * 10, stamp=first.header.stamp, first_tick=1)
    t0 = stamp_ns(first)
    assert client.wait(lambda: client.poses and stamp_ns(client.poses[-1]) >= t0 + 10 * TICK_NS
                       and stamp_ns(client.joints[-1]) >= t0 + 10 * TICK_NS), proc.log_text()
    by_stamp = {stamp_ns(m): m for m in client.poses}
    # One PoseArray per observation, with its joint states' stamp, in the world frame.
    assert all(stamp_ns(j) in by_stamp for j in client.joints if stamp_ns(j) >= t0)
    assert {m.header.frame_id for m in client.poses} == {"world"}
    assert all(len(m.poses) == 1 for m in client.poses)  # transfer_cube: the cube

    # The same seed and commands in this process reach the same poses.
    transfer_cube_sim.reset(seed)
    np.testing.assert_allclose(pose_rows(by_stamp[t0]),
                               poses_in_ros_order(transfer_cube_sim.object_poses()), atol=1e-9)
    for _ in range(10):
        transfer_cube_sim.step(hold)
    expected = poses_in_ros_order(transfer_cube_sim.object_poses())
    np.testing.assert_allclose(pose_rows(by_stamp[t0 + 10 * TICK_NS]), expected, atol=1e-9)
    assert np.linalg.norm(expected[0, 3:]) == pytest.approx(1.0)
    assert proc.stop(timeout=15) == 0


def test_invalid_parameters_stop_the_node_with_a_message(start_node, graph_client):
    proc = start_node(MODULE, params={"image_size": 64})
    proc.process.wait(timeout=40)
    assert proc.process.returncode == 2
    assert "image_size" in proc.log_text()


def test_realtime_mode_steps_at_50_hz_on_the_wall_clock(start_node, graph_client):
    client = RobotClient(graph_client)
    proc = start_robot(start_node, graph_client, mode="realtime", publish_object_poses=False)
    assert client.wait(lambda: client.joints)
    graph_client.spin_for(0.5)
    before = len(client.joints)
    graph_client.spin_for(2.0)
    rate = (len(client.joints) - before) / 2.0
    assert 20.0 <= rate <= 60.0, f"{rate} Hz"
    stamps = [stamp_ns(m) for m in client.joints[before:]]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps must increase"
    assert not client.clock, "realtime mode must not publish /clock"
    assert not client.poses, "publish_object_poses:=false must not publish object_poses"
    assert proc.stop(timeout=15) == 0
