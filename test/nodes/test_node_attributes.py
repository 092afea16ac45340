# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Our node classes must not overwrite rclpy's own bookkeeping attributes.

rclpy's Node keeps its entities in plain attributes (``_subscriptions``, ``_timers``,
``_clock``...). A subclass that assigns one of those names replaces what the executor waits
on: the policy node once dropped the ``/clock`` subscription rclpy creates for
``use_sim_time`` (its simulated clock never moved) and listed its own entities twice (its
executor spun at 100% CPU).
"""

from __future__ import annotations

import ast
import inspect

import pytest
from checkpoint_fixtures import write_tiny_checkpoint
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros


def _node_classes():
    from rclpy.node import Node

    from snapflow_ros.nodes import (
        bag_player_node,
        heartbeat_node,
        policy_node,
        sim_robot_node,
        train_node,
    )

    modules = (bag_player_node, heartbeat_node, policy_node, sim_robot_node, train_node)
    return [cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Node) and cls.__module__ == module.__name__]


def _rclpy_attributes() -> set[str]:
    from rclpy.lifecycle import LifecycleNode

    probe = LifecycleNode("node_attributes_probe")
    try:
        return set(vars(probe))
    finally:
        probe.destroy_node()


def _assigned_self_attributes(cls) -> set[str]:
    tree = ast.parse(inspect.getsource(cls))
    names = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if (isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name)
                        and leaf.value.id == "self"):
                    names.add(leaf.attr)
    return names


def test_no_node_class_assigns_an_attribute_rclpy_uses(graph_client):
    reserved = _rclpy_attributes()  # graph_client: rclpy is initialised
    assert {"_subscriptions", "_timers", "_clock"} <= reserved  # the probe sees rclpy's names
    classes = _node_classes()
    assert {c.__name__ for c in classes} >= {"PolicyNode", "BagPlayerNode", "SimRobotNode"}
    clashes = {cls.__name__: sorted(_assigned_self_attributes(cls) & reserved)
               for cls in classes}
    assert not {name: attrs for name, attrs in clashes.items() if attrs}


def test_policy_node_under_sim_time_keeps_its_clock_subscription_through_lifecycles(
        graph_client, tmp_path):
    from snapflow_ros.nodes.policy_node import PolicyNode

    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt", image_size=32)
    # Its own name: services of a "snapflow_policy" destroyed here would linger in the graph
    # caches of this process and catch calls meant for the node other tests start.
    node = PolicyNode("node_attributes_policy", parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("checkpoint", value=str(checkpoint)),
        Parameter("device", value="cpu")])
    try:
        for _ in range(2):  # configure / activate / deactivate / cleanup, twice
            for transition in (node.trigger_configure, node.trigger_activate):
                transition()
                topics = [s.topic_name for s in node.subscriptions]
                assert "/clock" in topics
                assert len(set(map(id, node.subscriptions))) == len(topics), topics
                timers = list(node.timers)
                assert len(set(map(id, timers))) == len(timers)
            node.trigger_deactivate()
            node.trigger_cleanup()
            assert "/clock" in [s.topic_name for s in node.subscriptions]
    finally:
        node.destroy_node()
