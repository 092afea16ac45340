# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS publish stage of the latency benchmark: real JointTrajectory messages, timed."""

import numpy as np
import pytest

from snapflow_ros.evaluation.latency_bench import LatencyBenchConfig, run_latency_benchmark
from snapflow_ros.nodes.harness.latency_publish import TOPIC, RosTrajectoryPublisher


def test_the_ros_publish_stage_runs_where_rclpy_is_installed():
    pytest.importorskip("rclpy")
    config = LatencyBenchConfig(steps=(1,), repeats=2, warmup=1, device="cpu")
    report = run_latency_benchmark(config, publisher_factory=RosTrajectoryPublisher.create)
    assert report["publish_stage"] is True and report["publish_note"] == ""
    assert report["results"]["1"]["stages"]["publish"]["p50"] > 0


def test_without_a_publisher_the_stage_is_reported_as_not_measured():
    config = LatencyBenchConfig(steps=(1,), repeats=1, warmup=1, device="cpu")
    report = run_latency_benchmark(config)
    assert report["publish_stage"] is False and "publish stage" in report["publish_note"]
    assert np.isnan(report["results"]["1"]["stages"]["publish"]["p50"])


def test_published_chunks_arrive_as_the_policy_node_sends_them(graph_client):
    from trajectory_msgs.msg import JointTrajectory

    received = []
    graph_client.node.create_subscription(JointTrajectory, f"/{TOPIC}", received.append, 10)
    publisher, why = RosTrajectoryPublisher.create(("a", "b"), 0.02)
    assert publisher is not None, why
    try:
        actions = np.array([[0.1, -0.2], [0.3, 0.4], [0.5, 0.6]])
        assert graph_client.spin_until(
            lambda: graph_client.node.count_publishers(f"/{TOPIC}") > 0, 10.0)
        # Discovery of the subscriber by the publisher's node is not instantaneous: resend.
        for _ in range(100):
            publisher.publish(actions)
            if graph_client.spin_until(lambda: bool(received), 0.1):
                break
    finally:
        publisher.close()
    assert received, "no trajectory arrived"
    message = received[0]
    assert list(message.joint_names) == ["a", "b"]
    np.testing.assert_allclose([list(p.positions) for p in message.points], actions)
    assert [p.time_from_start.nanosec for p in message.points] == [0, 20_000_000, 40_000_000]
    assert message.header.stamp.sec > 0
