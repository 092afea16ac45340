# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A lifecycle node of the package driven through its real services from the test process."""

import pytest
from std_msgs.msg import String

pytestmark = pytest.mark.ros

NODE = "snapflow_heartbeat"


def test_lifecycle_transitions_over_real_services(start_node, graph_client):
    proc = start_node("snapflow_ros.nodes.heartbeat_node", params={"rate_hz": 50.0})
    assert graph_client.wait_for_node(NODE, timeout=30), proc.log_text()
    received = []
    graph_client.node.create_subscription(String, "heartbeat", received.append, 10)

    assert graph_client.lifecycle_state(NODE) == "unconfigured"
    graph_client.spin_for(0.3)
    assert received == []

    assert graph_client.change_lifecycle_state(NODE, "configure")
    assert graph_client.lifecycle_state(NODE) == "inactive"
    graph_client.spin_for(0.3)
    assert received == [], "an inactive lifecycle node must not publish"

    assert graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.lifecycle_state(NODE) == "active"
    assert graph_client.spin_until(lambda: len(received) >= 3, timeout=10)

    assert graph_client.change_lifecycle_state(NODE, "deactivate")
    assert graph_client.lifecycle_state(NODE) == "inactive"
    graph_client.spin_for(0.2)
    count = len(received)
    graph_client.spin_for(0.3)
    assert len(received) == count, "published after deactivate"

    assert graph_client.change_lifecycle_state(NODE, "cleanup")
    assert graph_client.lifecycle_state(NODE) == "unconfigured"

    assert graph_client.change_lifecycle_state(NODE, "shutdown")
    assert graph_client.lifecycle_state(NODE) == "finalized"
    assert proc.running, "shutdown transition finalizes the node; the process stays up"


def test_invalid_transition_is_refused(start_node, graph_client):
    start_node("snapflow_ros.nodes.heartbeat_node")
    assert graph_client.wait_for_node(NODE, timeout=30)
    assert not graph_client.change_lifecycle_state(NODE, "activate")
    assert graph_client.lifecycle_state(NODE) == "unconfigured"


def test_parameters_get_and_set(start_node, graph_client):
    start_node("snapflow_ros.nodes.heartbeat_node", params={"rate_hz": 20.0})
    assert graph_client.wait_for_node(NODE, timeout=30)
    assert graph_client.get_parameters(NODE, ["rate_hz"]) == {"rate_hz": 20.0}
    result = graph_client.set_parameters(NODE, {"rate_hz": 5.0})
    assert result["rate_hz"][0]
    assert graph_client.get_parameters(NODE, ["rate_hz"])["rate_hz"] == 5.0


def test_sigint_stops_the_node_cleanly(start_node, graph_client):
    proc = start_node("snapflow_ros.nodes.heartbeat_node")
    assert graph_client.wait_for_node(NODE, timeout=30)
    assert proc.stop(timeout=10) == 0
    assert not proc.running
