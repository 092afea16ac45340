# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the policy node config: validation, runtime changes, fitting a checkpoint."""

import dataclasses

import pytest

from snapflow_ros.config_fields import ConfigError, load_config_yaml, replace_config
from snapflow_ros.runtime.config import (
    PolicyRuntimeConfig,
    resolve_for_policy,
    runtime_fields,
    validate_runtime_change,
)


def test_defaults_are_valid_and_every_field_is_documented():
    config = PolicyRuntimeConfig()
    assert config.num_steps == 1 and config.control_period_s == pytest.approx(0.02)
    for field in dataclasses.fields(PolicyRuntimeConfig):
        assert field.metadata["description"], field.name


def test_runtime_fields_are_exactly_the_live_tunable_ones():
    fields = set(runtime_fields())
    assert {"n_act", "num_steps", "sampler_mode", "prefetch_threshold", "blending",
            "blend_steps", "blend_decay", "dry_run", "max_input_age_s"} <= fields
    assert not fields & {"checkpoint", "device", "joint_names", "camera_topics", "camera_keys",
                         "control_rate_hz", "output_mode", "max_delta_per_tick",
                         "lower_limits", "first_command_mode"}


@pytest.mark.parametrize("changes, message", [
    ({"camera_topics": ("a", "b")}, "matched by index"),
    ({"camera_keys": ()}, "at least one camera"),
    ({"camera_keys": ("top", "top"), "camera_topics": ("a", "b")}, "duplicates"),
    ({"camera_transports": ("raw", "raw")}, "camera_transports"),
    ({"camera_transports": ("mjpeg",)}, "must be one of"),
    ({"limit_joint_names": ("a",), "lower_limits": (0.0,)}, "same length"),
    ({"limit_joint_names": ("a",), "lower_limits": (1.0,), "upper_limits": (0.0,)},
     "lower limit"),
    ({"max_delta_per_tick": ()}, "max_delta_per_tick"),
    ({"max_delta_per_tick": (0.0,)}, ">="),
    ({"expected_image_height": 480}, "set both"),
    ({"chunk_size": 8, "n_act": 9}, "exceeds the chunk size"),
    ({"output_mode": "burst"}, "must be one of"),
    ({"control_rate_hz": 0.5}, ">="),
    ({"max_input_age_s": float("nan")}, "finite"),
])
def test_invalid_configs_are_refused_with_the_field_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        PolicyRuntimeConfig(**changes)


def test_config_loads_from_a_ros_parameter_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy_node:\n  ros__parameters:\n    n_act: 7\n    control_rate_hz: 30\n"
                    "    camera_topics: [cam/a, cam/b]\n    camera_keys: [left, right]\n"
                    "    use_sim_time: true\n")
    config = load_config_yaml(PolicyRuntimeConfig, path, section="policy_node")
    assert config.n_act == 7 and config.control_rate_hz == 30.0
    assert config.camera_keys == ("left", "right")


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
    ("max_input_age_s", 2, True, ""),
    ("device", "cpu", False, "read-only"),
    ("control_rate_hz", 10.0, False, "read-only"),
    ("no_such_thing", 1, False, "unknown parameter"),
])
def test_validate_runtime_change(name, value, ok, reason):
    config = PolicyRuntimeConfig(chunk_size=16)
    result, message = validate_runtime_change(config, name, value)
    assert result is ok
    assert reason in message
    if ok:
        assert getattr(replace_config(config, **{name: value}), name) == value


def test_resolve_for_policy_fills_joints_in_model_order_and_chunk_size():
    config = PolicyRuntimeConfig(joint_names=("b", "a"), limit_joint_names=("a",),
                                 lower_limits=(-1.0,), upper_limits=(1.0,))
    resolved = resolve_for_policy(config, ("a", "b"), ("a", "b"), ("top",), 16)
    assert resolved.joint_names == ("a", "b") and resolved.chunk_size == 16
    assert not validate_runtime_change(resolved, "n_act", 32)[0]


def test_resolve_for_policy_names_every_mismatch():
    config = PolicyRuntimeConfig(joint_names=("a", "x"), camera_keys=("front",),
                                 camera_topics=("cam",), limit_joint_names=("z",),
                                 lower_limits=(0.0,), upper_limits=(1.0,),
                                 max_delta_per_tick=(0.1, 0.1, 0.1), n_act=20)
    with pytest.raises(ConfigError) as info:
        resolve_for_policy(config, ("a", "b"), ("a", "b"), ("top",), 10)
    message = str(info.value)
    for fragment in ("camera_keys", "missing ['b']", "unexpected ['x']", "['z']",
                     "3 values for 2", "n_act=20"):
        assert fragment in message
