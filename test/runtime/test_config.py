# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the policy node config: components, flat names, validation, fitting a checkpoint."""

import dataclasses

import pytest

from snapflow_ros.config_fields import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    flat_fields,
    flat_values,
    replace_config,
)
from snapflow_ros.config_loading import load_config_yaml
from snapflow_ros.runtime.chunk_scheduler import SchedulerConfig
from snapflow_ros.runtime.config import PolicyNodeConfig
from snapflow_ros.runtime.observation_buffer import ObservationConfig
from snapflow_ros.runtime.policy_controller import (
    PolicyControllerConfig,
    forget_policy,
    resolve_for_policy,
)
from snapflow_ros.runtime.policy_runner import RunnerConfig
from snapflow_ros.runtime.safety_guard import SafetyGuardConfig

COMPONENTS = (SchedulerConfig, SafetyGuardConfig, ObservationConfig, RunnerConfig,
              PolicyControllerConfig, PolicyNodeConfig)


def node_config(**flat):
    return replace_config(PolicyNodeConfig(), **flat)


def test_defaults_are_valid_and_every_field_is_documented():
    config = PolicyNodeConfig()
    assert config.controller.runner.num_steps == 1
    assert config.controller.scheduler.control_period_s == pytest.approx(0.02)
    for name, field in flat_fields(PolicyNodeConfig).items():
        assert field.metadata["description"], name


def test_every_setting_is_a_field_of_exactly_one_component():
    own = {cls.__name__: [f.name for f in dataclasses.fields(cls)
                          if not f.metadata.get("component")] for cls in COMPONENTS}
    names = [name for fields in own.values() for name in fields]
    assert len(names) == len(set(names)), "a setting is a field of two components"
    assert set(names) == set(flat_fields(PolicyNodeConfig))
    assert "n_act" in own["SchedulerConfig"] and "num_steps" in own["RunnerConfig"]
    assert "max_input_age_s" in own["SafetyGuardConfig"]
    assert "camera_keys" in own["ObservationConfig"] and "camera_topics" in own["PolicyNodeConfig"]


def test_runtime_fields_are_exactly_the_live_tunable_ones():
    fields = {name for name, field in flat_fields(PolicyNodeConfig).items()
              if field.metadata.get("runtime")}
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
    ({"n_act": "five"}, "expected an integer"),
    ({"no_such_thing": 1}, "unknown"),
])
def test_invalid_configs_are_refused_with_the_field_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        node_config(**changes)


def test_flat_names_load_replace_and_round_trip(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy_node:\n  ros__parameters:\n    n_act: 7\n    control_rate_hz: 30\n"
                    "    camera_topics: [cam/a, cam/b]\n    camera_keys: [left, right]\n"
                    "    use_sim_time: true\n")
    config = load_config_yaml(PolicyNodeConfig, path, section="policy_node")
    assert config.controller.scheduler.n_act == 7
    assert config.controller.scheduler.control_rate_hz == 30.0
    assert config.controller.observation.camera_keys == ("left", "right")
    assert config.camera_topics == ("cam/a", "cam/b")
    changed = replace_config(config, num_steps=4, dry_run=True)
    assert changed.controller.runner.num_steps == 4 and changed.controller.guard.dry_run
    assert changed.controller.scheduler == config.controller.scheduler
    assert config_from_dict(PolicyNodeConfig, flat_values(changed)) == changed
    assert config_from_dict(PolicyNodeConfig, config_to_dict(changed)) == changed


def test_resolve_for_policy_fills_joints_in_model_order_and_chunk_size():
    config = node_config(joint_names=("b", "a"), limit_joint_names=("a",),
                         lower_limits=(-1.0,), upper_limits=(1.0,)).controller
    resolved = resolve_for_policy(config, ("a", "b"), ("a", "b"), ("top",), 16)
    assert resolved.observation.joint_names == ("a", "b")
    assert resolved.scheduler.chunk_size == 16
    with pytest.raises(ConfigError, match="exceeds the chunk size 16"):
        replace_config(resolved, n_act=32)
    # Cleaning up forgets the checkpoint but keeps what changed at runtime.
    forgotten = forget_policy(replace_config(resolved, n_act=12), config)
    assert forgotten.observation.joint_names == ("b", "a")
    assert forgotten.scheduler.chunk_size == 0 and forgotten.scheduler.n_act == 12


def test_resolve_for_policy_names_every_mismatch():
    config = node_config(joint_names=("a", "x"), camera_keys=("front",),
                         camera_topics=("cam",), limit_joint_names=("z",),
                         lower_limits=(0.0,), upper_limits=(1.0,),
                         max_delta_per_tick=(0.1, 0.1, 0.1), n_act=20).controller
    with pytest.raises(ConfigError) as info:
        resolve_for_policy(config, ("a", "b"), ("a", "b"), ("top",), 10)
    message = str(info.value)
    for fragment in ("camera_keys", "missing ['b']", "unexpected ['x']", "['z']",
                     "3 values for 2", "n_act=20"):
        assert fragment in message
