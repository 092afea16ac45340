# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""GraphClient's public service calls: any service, and std_srvs/Trigger in one line."""

import pytest
import rclpy
from std_srvs.srv import SetBool, Trigger

from snapflow_ros.nodes.graph_client import GraphClientError


@pytest.fixture
def server(graph_client):
    """A node in this process offering ~/reset (Trigger) and ~/enable (SetBool)."""
    node = rclpy.create_node("graph_client_test_server")
    calls = []

    def reset(request, response):
        calls.append("reset")
        response.success, response.message = True, '{"episode": 2}'
        return response

    def enable(request, response):
        calls.append(("enable", request.data))
        response.success, response.message = bool(request.data), "done"
        return response

    node.create_service(Trigger, "~/reset", reset)
    node.create_service(SetBool, "~/enable", enable)
    # The client's executor spins this node too, while it waits for the answers.
    graph_client.executor.add_node(node)
    yield calls
    graph_client.executor.remove_node(node)
    node.destroy_node()


def test_trigger_and_call_service_reach_the_node_and_return_its_answer(graph_client, server):
    assert graph_client.trigger("/graph_client_test_server/reset", timeout=10.0) == (
        True, '{"episode": 2}')
    reply = graph_client.call_service(SetBool, "/graph_client_test_server/enable",
                                      SetBool.Request(data=False), timeout=10.0)
    assert (reply.success, reply.message) == (False, "done")
    assert server == ["reset", ("enable", False)]


def test_a_missing_service_raises_naming_it(graph_client):
    with pytest.raises(GraphClientError, match="/nobody/reset"):
        graph_client.trigger("/nobody/reset", timeout=0.5)
