# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The bag player as a real process: every message arrives, in order, with the recorded timing."""

import json
import time

import numpy as np
import pytest
from bag_fixtures import write_demo_bag
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

pytestmark = pytest.mark.ros

NODE = "snapflow_ros.nodes.bag_player_node"


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory):
    # 1.2 s of recording: long enough that a halved duration is clearly measurable.
    return write_demo_bag(tmp_path_factory.mktemp("bags") / "demo", n_steps=60, rate_hz=50.0,
                          camera_hz=10.0, state_hz=50.0, image_size=(16, 16))


def _stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _play(start_node, graph_client, bag, *, params=None):
    """Subscribe, start the player, collect (arrival time, stamp) per topic until it exits."""
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    received = {"state": [], "image": [], "clock": [], "action": [], "task": [],
                "state_wall": []}
    node = graph_client.node
    subs = [
        node.create_subscription(JointState, bag.action_topic,
                                 lambda m: received["action"].append(_stamp_ns(m)), qos),
        node.create_subscription(String, bag.task_topic,
                                 lambda m: received["task"].append(m.data), qos),
        node.create_subscription(JointState, bag.state_topic, lambda m: (
            received["state"].append((time.monotonic(), _stamp_ns(m), list(m.position))),
            received["state_wall"].append(time.time())), qos),
        node.create_subscription(Image, bag.camera_topics[0], lambda m: received["image"].append(
            (time.monotonic(), _stamp_ns(m), bytes(m.data[:1]))), qos),
        node.create_subscription(Clock, "/clock", lambda m: received["clock"].append(
            m.clock.sec * 1_000_000_000 + m.clock.nanosec), 100),
    ]
    proc = start_node(NODE, params={"bag": str(bag.path), "wait_for_subscribers": 1,
                                    "wait_timeout_s": 20.0, **(params or {})})
    expected = len(bag.topics[bag.state_topic].receive_ns)
    assert graph_client.spin_until(lambda: not proc.running, timeout=40), proc.log_text()
    graph_client.spin_until(lambda: len(received["state"]) >= expected, timeout=2)
    for sub in subs:
        node.destroy_subscription(sub)
    assert proc.process.returncode == 0, proc.log_text()
    return received, proc


def test_plays_every_message_in_order_with_the_recorded_timing(start_node, graph_client,
                                                               demo_bag, tmp_path):
    timeline = tmp_path / "timeline.jsonl"
    received, proc = _play(start_node, graph_client, demo_bag,
                           params={"publish_clock": True, "timeline_file": str(timeline)})
    written_state = demo_bag.topics[demo_bag.state_topic]
    written_image = demo_bag.topics[demo_bag.camera_topics[0]]
    assert [s for _, s, _ in received["state"]] == written_state.header_ns.tolist()
    np.testing.assert_allclose([p for _, _, p in received["state"]], written_state.values)
    assert [s for _, s, _ in received["image"]] == written_image.header_ns.tolist()
    assert received["action"] == demo_bag.topics[demo_bag.action_topic].header_ns.tolist()
    assert received["task"] == [demo_bag.task]
    assert [d for _, _, d in received["image"]] == [bytes(im[:1, :1, :1].reshape(-1))
                                                    for im in written_image.values]
    arrival = np.array([t for t, _, _ in received["state"]])
    recorded = (written_state.receive_ns - written_state.receive_ns[0]) / 1e9
    # Arrival times follow the recording. A loaded machine delays a few deliveries by 100 ms
    # or more, so the bound is on the 90th percentile: a player that did not pace would be off
    # by up to the whole 1.2 s.
    offsets = (arrival - arrival[0]) - recorded
    assert np.percentile(np.abs(offsets - np.median(offsets)), 90) < 0.05, offsets
    assert "done: published" in proc.log_text()
    clock = np.array(received["clock"])
    assert len(clock) > 10 and np.all(np.diff(clock) >= 0)
    bag_start = min(t.receive_ns.min() for t in demo_bag.topics.values())
    bag_end = max(t.receive_ns.max() for t in demo_bag.topics.values())
    assert bag_start - 50_000_000 <= clock[0] and clock[-1] <= bag_end + 50_000_000
    # The timeline relates system time to bag time: bag = first + rate * (t - system_start).
    (record,) = [json.loads(line) for line in timeline.read_text().splitlines()]
    assert record["bag_first_ns"] == bag_start and record["rate"] == 1.0
    state_due = (record["system_time_ns"] + (written_state.receive_ns - bag_start)) / 1e9
    # The median delay, not the first message's: on a loaded machine one delivery can lag by
    # more than 100 ms while the timeline itself is right.
    delay = np.median(np.array(received["state_wall"]) - state_due)
    assert -0.02 < delay < 0.1, delay


def test_rate_two_takes_about_half_the_time(start_node, graph_client, demo_bag):
    recorded = demo_bag.topics[demo_bag.state_topic].receive_ns / 1e9

    def pace(params):
        # Seconds of arrival per recorded second: the slope of a fit over all messages, which
        # one late delivery cannot move much (the first-to-last span can).
        received, _ = _play(start_node, graph_client, demo_bag, params=params)
        arrival = np.array([t for t, _, _ in received["state"]])
        return np.polyfit(recorded - recorded[0], arrival - arrival[0], 1)[0]

    assert pace({"rate": 1.0}) == pytest.approx(1.0, abs=0.08)
    assert pace({"rate": 2.0}) == pytest.approx(0.5, abs=0.08)


def test_topic_selection_and_remap(start_node, graph_client, demo_bag):
    received = []
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    graph_client.node.create_subscription(JointState, "/replayed", received.append, qos)
    camera = []
    graph_client.node.create_subscription(Image, demo_bag.camera_topics[0], camera.append, qos)
    proc = start_node(NODE, params={
        "bag": str(demo_bag.path), "topics": [demo_bag.state_topic], "rate": 4.0,
        "remap": [f"{demo_bag.state_topic}:=/replayed"], "wait_for_subscribers": 1})
    expected = len(demo_bag.topics[demo_bag.state_topic].receive_ns)
    assert graph_client.spin_until(lambda: not proc.running, timeout=40), proc.log_text()
    graph_client.spin_until(lambda: len(received) >= expected, timeout=2)
    assert len(received) == expected
    assert camera == [], "a topic left out of 'topics' was played"


def test_a_missing_bag_exits_with_a_clear_error(start_node, graph_client, tmp_path):
    proc = start_node(NODE, params={"bag": str(tmp_path / "nothing_here")})
    assert graph_client.spin_until(lambda: not proc.running, timeout=30)
    assert proc.process.returncode == 2
    assert "no such file or directory" in proc.log_text()
