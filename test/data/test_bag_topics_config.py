# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""BagTopicsConfig: defaults, derived camera keys, validation and YAML / ROS params loading."""

import pytest

from snapflow_ros.config_fields import ConfigError, config_from_dict
from snapflow_ros.config_loading import load_config_yaml
from snapflow_ros.data.config import BagTopicsConfig, camera_key_from_topic


def test_single_camera_is_called_top_and_actions_default_to_state_joints():
    config = BagTopicsConfig(camera_topics=("/front/image_raw",), joint_names=("a", "b"))
    assert config.camera_keys == ("top",)
    assert config.action_joint_names == ("a", "b")
    assert config.period_ns == 20_000_000


@pytest.mark.parametrize("topic, key", [
    ("/cam_high/image_raw", "cam_high"),
    ("/camera/wrist/image_raw/compressed", "wrist"),
    ("/left/color/image_rect_color", "left"),
    ("/image_raw", "image_raw"),
])
def test_camera_keys_are_derived_from_topic_names(topic, key):
    assert camera_key_from_topic(topic) == key


def test_several_cameras_get_keys_from_their_topics():
    config = BagTopicsConfig(camera_topics=("/cam_high/image_raw", "/cam_wrist/image_raw"))
    assert config.camera_keys == ("cam_high", "cam_wrist")


@pytest.mark.parametrize("changes, words", [
    ({"camera_topics": ("/a/image_raw", "/b/a/image_raw")}, "camera_keys"),
    ({"camera_topics": ("/x",), "camera_keys": ("a", "b")}, "camera_keys"),
    ({"camera_topics": ()}, "camera_topics"),
    ({"action_type": "twist"}, "action_type"),
    ({"time_source": "wall"}, "time_source"),
    ({"on_corrupt_bag": "ignore"}, "on_corrupt_bag"),
    ({"rate_hz": 0.0}, "rate_hz"),
    ({"tolerance_s": -0.1}, "tolerance_s"),
    ({"min_episode_steps": 0}, "min_episode_steps"),
    ({"joint_names": ("a", "a")}, "joint_names"),
    ({"task_topic": "/joint_states"}, "/joint_states"),
])
def test_invalid_settings_are_rejected_by_name(changes, words):
    with pytest.raises(ConfigError, match=words):
        BagTopicsConfig(**changes)


def test_reading_actions_from_the_state_topic_is_allowed():
    config = BagTopicsConfig(action_topic="/joint_states", action_type="joint_state")
    assert config.action_topic == config.state_topic
    assert BagTopicsConfig(action_topic="/joint_states").action_type == "auto"
    with pytest.raises(ConfigError, match="more than one stream"):
        BagTopicsConfig(action_topic="/joint_states", action_type="joint_trajectory")


def test_by_default_the_action_type_is_taken_from_the_bag():
    assert BagTopicsConfig().action_type == "auto"
    meta = BagTopicsConfig.__dataclass_fields__["action_type"].metadata
    assert "auto" in meta["choices"] and "the type each bag records" in meta["description"]
    with pytest.raises(ConfigError, match="action_type"):
        BagTopicsConfig(action_type="")


def test_loads_from_yaml_and_from_a_ros_parameters_file(tmp_path):
    plain = tmp_path / "bags.yaml"
    plain.write_text("camera_topics: [/cam/image_raw]\njoint_names: [j1, j2]\nrate_hz: 30\n")
    config = load_config_yaml(BagTopicsConfig, plain)
    assert config.camera_topics == ("/cam/image_raw",) and config.rate_hz == 30.0
    ros = tmp_path / "train.yaml"
    ros.write_text("train_node:\n  ros__parameters:\n    split_on_gap_s: 1.5\n"
                   "    time_source: receive\n")
    config = load_config_yaml(BagTopicsConfig, ros, section="train_node")
    assert config.split_on_gap_s == 1.5 and config.time_source == "receive"


def test_unknown_or_mistyped_options_name_the_option():
    with pytest.raises(ConfigError, match="camera_topic"):
        config_from_dict(BagTopicsConfig, {"camera_topic": "/x"})
    with pytest.raises(ConfigError, match="camera_topics"):
        config_from_dict(BagTopicsConfig, {"camera_topics": "/x"})
