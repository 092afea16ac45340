# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node's input subscriptions: each message goes to the controller, decoded there.

Joint state, cameras (raw or compressed), the latched task text, and the environment-state
topics (object poses as ``geometry_msgs/PoseStamped`` / ``PoseArray`` or a
``std_msgs/Float64MultiArray``, one source per topic: the topic's last segment).
"""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from snapflow_ros.data.environment_state import ENVIRONMENT_STATE_TYPES, source_key
from snapflow_ros.runtime.config import PolicyNodeConfig

_ENVIRONMENT_MESSAGES = {"pose_stamped": PoseStamped, "pose_array": PoseArray,
                         "float64_multi_array": Float64MultiArray}


def stamp_seconds(stamp: Any) -> float:
    """A ``builtin_interfaces/Time`` in seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Reliable, or best effort with the sensor-data history, at ``depth``."""
    if reliability == "best_effort":
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                          history=qos_profile_sensor_data.history)
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def subscribe_inputs(node: Any, config: PolicyNodeConfig, controller: Any) -> list:
    """Create every input subscription of ``config`` on ``node``; returns them."""
    subscriptions = []
    joint_qos = qos_profile(config.joint_state_qos_reliability, config.joint_state_qos_depth)
    image_qos = qos_profile(config.image_qos_reliability, config.image_qos_depth)

    def on_joint_state(msg: JointState) -> None:
        controller.add_joint_state(msg.name, msg.position, stamp_seconds(msg.header.stamp))

    def on_image(key: str):
        return lambda msg: controller.add_raw_image(
            key, msg.encoding, msg.height, msg.width, msg.step, msg.data,
            stamp_seconds(msg.header.stamp))

    def on_compressed(key: str):
        return lambda msg: controller.add_compressed_image(
            key, msg.format, msg.data, stamp_seconds(msg.header.stamp))

    def on_environment_state(source: str, kind: str):
        msgtype = ENVIRONMENT_STATE_TYPES[kind]
        if kind == "float64_multi_array":  # no header: the receive time orders it
            return lambda msg: controller.add_environment_state(source, msgtype, msg)
        return lambda msg: controller.add_environment_state(
            source, msgtype, msg, stamp_seconds(msg.header.stamp))

    subscriptions.append(node.create_subscription(JointState, config.joint_state_topic,
                                                  on_joint_state, joint_qos))
    keys = config.controller.observation.camera_keys
    for index, (topic, key) in enumerate(zip(config.camera_topics, keys)):
        if config.camera_transport(index) == "compressed":
            subscriptions.append(node.create_subscription(CompressedImage, topic,
                                                          on_compressed(key), image_qos))
        else:
            subscriptions.append(node.create_subscription(Image, topic, on_image(key),
                                                          image_qos))
    reads_environment = bool(config.controller.observation.environment_state_names)
    for index, topic in enumerate(config.environment_state_topics if reads_environment else ()):
        kind = config.environment_state_type(index)
        subscriptions.append(node.create_subscription(
            _ENVIRONMENT_MESSAGES[kind], topic, on_environment_state(source_key(topic), kind),
            joint_qos))
    if config.task_topic:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        subscriptions.append(node.create_subscription(
            String, config.task_topic, lambda msg: controller.set_task(msg.data), latched))
    return subscriptions
