# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Which topics of a rosbag2 recording become training samples, and how they are resampled.

One frozen dataclass, :class:`BagTopicsConfig`, loaded from YAML (or a ROS parameters file) with
:func:`snapflow_ros.config_loading.load_config_yaml`. It imports neither torch nor rclpy.
"""

from __future__ import annotations

import dataclasses

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.data.environment_state import ENVIRONMENT_STATE_LAYOUTS, source_key

ACTION_TYPES = ("joint_state", "joint_trajectory", "float64_multi_array")
# "auto": the action message type is the one the bag's metadata records for the action topic.
ACTION_TYPE_CHOICES = ("auto", *ACTION_TYPES)

# Topic path segments that say how an image is transported, not which camera it is.
_GENERIC_IMAGE_SEGMENTS = frozenset({
    "image", "image_raw", "image_rect", "image_rect_color", "image_color", "color", "rgb",
    "compressed", "camera", "cameras", "raw",
})


def camera_key_from_topic(topic: str) -> str:
    """Camera key of an image topic: its last segment naming the camera.

    ``/cam_high/image_raw`` -> ``cam_high``; ``/camera/top/image_raw/compressed`` -> ``top``.
    """
    segments = [s for s in topic.strip("/").split("/") if s]
    for segment in reversed(segments):
        if segment not in _GENERIC_IMAGE_SEGMENTS:
            return segment
    return segments[-1] if segments else topic


@dataclasses.dataclass(frozen=True)
class BagTopicsConfig:
    """Topics, names and resampling of rosbag2 demonstrations for training."""

    camera_topics: tuple[str, ...] = param(
        ("/camera/image_raw",),
        "Camera topics (sensor_msgs/Image or sensor_msgs/CompressedImage), one per camera.")
    camera_keys: tuple[str, ...] = param(
        (), "Camera names the model uses, one per camera topic (default: 'top' for a single "
            "camera, else derived from each topic, e.g. /cam_high/image_raw -> cam_high).")
    state_topic: str = param("/joint_states", "Robot state topic (sensor_msgs/JointState).")
    joint_names: tuple[str, ...] = param(
        (), "State joints, picked by name in this order (empty: all, in the first message's "
            "order).")
    action_topic: str = param(
        "/joint_trajectory", "Action topic: what was commanded at each instant.")
    action_type: str = param(
        "auto",
        "Action message: auto (the type each bag records for action_topic), or an override "
        "that must match it: joint_state (leader arm sensor_msgs/JointState), "
        "joint_trajectory (trajectory_msgs/JointTrajectory, first point's positions) or "
        "float64_multi_array (std_msgs/Float64MultiArray, positional).",
        choices=ACTION_TYPE_CHOICES)
    action_joint_names: tuple[str, ...] = param(
        (), "Action dimensions, picked by name in this order (default: joint_names, else the "
            "action message's joints in the state's order where the state has them). For "
            "float64_multi_array they label the array's entries, which must match in number.")
    environment_state_topics: tuple[str, ...] = param(
        (), "Environment-state topics (object poses: geometry_msgs/PoseStamped or PoseArray, or "
            "std_msgs/Float64MultiArray), resampled like the joints and concatenated in this "
            "order into observation.environment_state (empty: none; snapflow train "
            "--environment-state-topics). A policy trained on them needs them at run time.")
    environment_state_layout: str = param(
        "pose", "Values per pose of the environment-state topics: pose (x y z qx qy qz qw) or "
                "position (x y z).", choices=ENVIRONMENT_STATE_LAYOUTS)
    task_topic: str = param(
        "", "Optional std_msgs/String topic with the task instruction (empty: none).")
    default_task: str = param(
        "", "Task text for episodes without a task message.")
    episode_marker_topic: str = param(
        "", "Optional std_msgs/Bool or std_msgs/String topic that delimits episodes inside a bag "
            "(Bool: true while an episode runs; String: 'start' / 'stop'). Empty: one episode "
            "per bag.")
    rate_hz: float = param(50.0, "Control rate: samples per second on the resampled grid (Hz).",
                           low=0.1, high=10000.0)
    tolerance_s: float = param(
        0.1, "Largest age of the latest message of every stream for a sample to be kept (s).",
        low=0.0, high=60.0)
    time_source: str = param(
        "header", "Message time: header (header.stamp for types that have one, unless all of a "
                  "topic's stamps are zero; bag receive time otherwise) or receive (bag "
                  "receive time always).",
        choices=("header", "receive"))
    image_height: int = param(128, "Image height after resizing (pixels).", low=8, high=4096)
    image_width: int = param(128, "Image width after resizing (pixels).", low=8, high=4096)
    split_on_gap_s: float = param(
        0.0, "Start a new episode where no message arrives on any used topic for longer than "
             "this (s); 0 disables.", low=0.0)
    on_corrupt_bag: str = param(
        "fail", "A truncated or corrupt bag: fail (raise) or skip (warn and go on).",
        choices=("skip", "fail"))
    min_episode_steps: int = param(
        10, "Episodes with fewer resampled steps are skipped with a warning.", low=1)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.camera_topics:
            raise ConfigError("camera_topics is empty: name at least one camera topic")
        if not self.state_topic or not self.action_topic:
            raise ConfigError("state_topic and action_topic must both be set")
        if not self.camera_keys:
            keys = (("top",) if len(self.camera_topics) == 1
                    else tuple(camera_key_from_topic(t) for t in self.camera_topics))
            object.__setattr__(self, "camera_keys", keys)
        if len(self.camera_keys) != len(self.camera_topics):
            raise ConfigError(
                f"camera_keys {list(self.camera_keys)} must name each of the "
                f"{len(self.camera_topics)} camera_topics {list(self.camera_topics)}")
        for label, names in (("camera_topics", self.camera_topics),
                             ("camera_keys", self.camera_keys),
                             ("joint_names", self.joint_names),
                             ("action_joint_names", self.action_joint_names),
                             ("environment_state_topics", self.environment_state_topics)):
            if len(set(names)) != len(names):
                hint = " (set camera_keys explicitly)" if label == "camera_keys" else ""
                raise ConfigError(f"{label} has duplicates: {list(names)}{hint}")
        if not self.action_joint_names and self.joint_names:
            object.__setattr__(self, "action_joint_names", tuple(self.joint_names))
        sources = [source_key(t) for t in self.environment_state_topics]
        if not all(t.strip("/") for t in self.environment_state_topics):
            raise ConfigError(f"environment_state_topics {list(self.environment_state_topics)} "
                              "has an empty topic")
        if len(set(sources)) != len(sources):
            raise ConfigError(
                f"environment_state_topics {list(self.environment_state_topics)} end in the "
                f"same name ({sources}): their values would share names; rename a topic")
        used = [*self.camera_topics, self.state_topic, self.action_topic,
                *self.environment_state_topics,
                *(t for t in (self.task_topic, self.episode_marker_topic) if t)]
        repeated = {t for t in used if used.count(t) > 1}
        # Reading the action from the state stream (action = measured position) is the one
        # legitimate repeat; any other is a copy-paste mistake.
        if self.action_topic == self.state_topic and self.action_type in ("auto",
                                                                          "joint_state"):
            repeated.discard(self.state_topic)
        if repeated:
            raise ConfigError(
                f"topic(s) {sorted(repeated)} are configured for more than one stream")

    @property
    def period_ns(self) -> int:
        """Grid step in nanoseconds."""
        return int(round(1e9 / self.rate_hz))
