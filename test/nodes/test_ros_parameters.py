# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Config <-> ROS parameters: flat names of a composed config, and the set-parameters check."""

from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from snapflow_ros.config_fields import flat_fields, replace_config
from snapflow_ros.nodes.ros_parameters import apply_parameter_changes, ros_fields
from snapflow_ros.nodes.sim_robot_node import SimRobotNodeConfig
from snapflow_ros.runtime.config import PolicyNodeConfig

CONFIGURED = replace_config(PolicyNodeConfig(), chunk_size=16)


def test_a_composed_config_is_declared_under_flat_names_without_its_internal_fields():
    names = [f.name for f in ros_fields(PolicyNodeConfig)]
    assert {"n_act", "num_steps", "checkpoint", "camera_topics", "max_input_age_s"} <= set(names)
    assert "chunk_size" not in names and "controller" not in names
    assert len(names) == len(set(names)) == len(flat_fields(PolicyNodeConfig)) - 1


@pytest.mark.parametrize("name, value, ok, reason", [
    ("n_act", 5, True, ""),
    ("n_act", 0, False, ">= 1"),
    ("n_act", 17, False, "exceeds the chunk size 16"),
    ("n_act", "five", False, "expected an integer"),
    ("num_steps", 4, True, ""),
    ("blending", "exponential", True, ""),
    ("blending", "cubic", False, "must be one of"),
    ("dry_run", True, True, ""),
    ("dry_run", 1, False, "true or false"),
    ("max_input_age_s", 2.0, True, ""),
    ("max_delta_per_tick", [0.1, 0.2], False, "read-only once configured"),
    ("device", "cpu", False, "read-only once configured"),
    ("control_rate_hz", 10.0, False, "read-only once configured"),
])
def test_changes_to_a_configured_node(name, value, ok, reason):
    result, config = apply_parameter_changes(CONFIGURED, [Parameter(name, value=value)])
    assert result.successful is ok
    assert reason in result.reason
    if ok:
        assert config == replace_config(CONFIGURED, **{name: value})
    else:
        assert config is CONFIGURED


def test_before_configure_every_field_may_change_and_others_are_left_to_their_owner():
    base = PolicyNodeConfig()
    result, config = apply_parameter_changes(
        base, [Parameter("checkpoint", value="/run"), Parameter("use_sim_time", value=True),
               Parameter("camera_keys", value=["a", "b"]),
               Parameter("camera_topics", value=["x", "y"])], configured=False)
    assert result.successful
    assert config.controller.runner.checkpoint == "/run"
    assert config.controller.observation.camera_keys == ("a", "b")
    result, same = apply_parameter_changes(base, [Parameter("use_sim_time", value=True)],
                                           configured=False)
    assert result.successful and same is base
    # A change that breaks a cross-field rule is refused, naming it.
    result, same = apply_parameter_changes(base, [Parameter("camera_keys", value=["a", "b"])],
                                           configured=False)
    assert not result.successful and "matched by index" in result.reason and same is base


def test_the_sim_robot_accepts_runtime_fields_only():
    base = SimRobotNodeConfig()
    result, config = apply_parameter_changes(base, [Parameter("seed", value=7)])
    assert result.successful and config.seed == 7
    result, config = apply_parameter_changes(base, [Parameter("mode", value="lockstep")])
    assert not result.successful and "read-only" in result.reason and config is base
