# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node's configuration: its topics and QoS over the controller's component configs.

:class:`PolicyNodeConfig` composes, each defined and validated beside its component:

- :class:`~snapflow_ros.runtime.policy_controller.PolicyControllerConfig`: the fresh-frame wait
  and the latency window, over
  :class:`~snapflow_ros.runtime.policy_runner.RunnerConfig` (checkpoint, device, sampler),
  :class:`~snapflow_ros.runtime.observation_buffer.ObservationConfig` (joints, cameras, input
  checks), :class:`~snapflow_ros.runtime.chunk_scheduler.SchedulerConfig` (rate, ``n_act``,
  prefetch, blending) and :class:`~snapflow_ros.runtime.safety_guard.SafetyGuardConfig` (limits,
  first command, dry run, input age).

Every field is one flat ROS parameter (``n_act``, not ``controller.scheduler.n_act``), so
``config/policy.yaml`` is a flat list; :func:`snapflow_ros.config_fields.replace_config` and
:func:`~snapflow_ros.config_loading.load_config_yaml` take the flat names. Fields marked
``runtime=True`` may change while the node is active; changes to the chunk schedule take effect
from the next chunk. Fitting a config to a checkpoint is
:func:`~snapflow_ros.runtime.policy_controller.resolve_for_policy`.
"""

from __future__ import annotations

import dataclasses

from snapflow_ros.config_fields import ConfigError, check_config, component, param
from snapflow_ros.data.environment_state import ENVIRONMENT_STATE_TYPES, sizes_by_source, source_key
from snapflow_ros.runtime.policy_controller import PolicyControllerConfig

DEACTIVATE_BEHAVIORS = ("hold", "stop")
CAMERA_TRANSPORTS = ("raw", "compressed")
QOS_RELIABILITIES = ("reliable", "best_effort")


@dataclasses.dataclass(frozen=True)
class PolicyNodeConfig:
    """Everything the policy node needs: topics, QoS, reports, and the controller's config."""

    joint_state_topic: str = param("joint_states", "sensor_msgs/JointState input topic.")
    camera_topics: tuple[str, ...] = param(
        ("camera/image_raw",), "Image topics, one per entry of camera_keys."
    )
    camera_transports: tuple[str, ...] = param(
        (), "Per camera topic: raw (sensor_msgs/Image) or compressed (empty = all raw).",
        choices=CAMERA_TRANSPORTS,
    )
    environment_state_topics: tuple[str, ...] = param(
        (), "Environment-state topics (object poses ...), one per source the checkpoint reads "
            "(a topic's last segment names its source, e.g. object_poses).")
    environment_state_types: tuple[str, ...] = param(
        (), "Per environment-state topic: pose_array, pose_stamped or float64_multi_array "
            "(empty = all pose_array).", choices=tuple(ENVIRONMENT_STATE_TYPES))
    task_topic: str = param(
        "task", "std_msgs/String topic (latched) whose text replaces `task` (empty = off).")
    command_topic: str = param("joint_trajectory", "trajectory_msgs/JointTrajectory output topic.")
    deactivate_behavior: str = param(
        "hold", "On deactivate: hold the last command, or stop publishing.",
        choices=DEACTIVATE_BEHAVIORS,
    )
    image_qos_reliability: str = param(
        "reliable", "Camera QoS (best_effort drops large raw images on default Fast DDS).",
        choices=QOS_RELIABILITIES,
    )
    image_qos_depth: int = param(1, "Camera subscription queue depth.", low=1, high=1000)
    joint_state_qos_reliability: str = param("reliable", "JointState QoS reliability.",
                                             choices=QOS_RELIABILITIES)
    joint_state_qos_depth: int = param(10, "JointState subscription queue depth.",
                                       low=1, high=1000)
    command_qos_depth: int = param(10, "Command publisher queue depth.", low=1, high=1000)
    diagnostics_period_s: float = param(1.0, "Period of the diagnostics report (s).",
                                        low=0.05, high=3600.0)
    controller: PolicyControllerConfig = component(PolicyControllerConfig, "controller")

    def __post_init__(self) -> None:
        check_config(self)
        camera_keys = self.controller.observation.camera_keys
        if len(self.camera_topics) != len(camera_keys):
            raise ConfigError(
                f"camera_topics has {len(self.camera_topics)} entries, camera_keys has "
                f"{len(camera_keys)}: they are matched by index"
            )
        if len(set(self.camera_topics)) != len(self.camera_topics):
            raise ConfigError(f"camera_topics has duplicates: {list(self.camera_topics)}")
        if self.camera_transports and len(self.camera_transports) != len(self.camera_topics):
            raise ConfigError(
                f"camera_transports has {len(self.camera_transports)} entries for "
                f"{len(self.camera_topics)} camera topics (leave it empty for all raw)"
            )

        sources = [source_key(t) for t in self.environment_state_topics]
        if len(set(sources)) != len(sources):
            raise ConfigError(f"environment_state_topics {list(self.environment_state_topics)} "
                              "must end in different names (each names its source)")
        if (self.environment_state_types
                and len(self.environment_state_types) != len(self.environment_state_topics)):
            raise ConfigError(
                f"environment_state_types has {len(self.environment_state_types)} entries for "
                f"{len(self.environment_state_topics)} topics (leave it empty for all pose_array)")

    def environment_state_type(self, index: int) -> str:
        """Message type (short name) of environment-state topic ``index``."""
        return (self.environment_state_types[index] if self.environment_state_types
                else "pose_array")

    def check_environment_state(self, names: tuple[str, ...]) -> str:
        """Raise :class:`ConfigError` unless the topics feed exactly the checkpoint's sources.

        Topics given for a checkpoint that reads no environment state are not an error (one
        parameter file serves image-only and pose policies): the returned warning says they are
        not subscribed ("" otherwise).
        """
        wanted = list(sizes_by_source(names))
        given = [source_key(t) for t in self.environment_state_topics]
        if not wanted and given:
            return (f"environment_state_topics {list(self.environment_state_topics)} not "
                    "subscribed: the checkpoint reads no environment state")
        if sorted(wanted) != sorted(given):
            raise ConfigError(
                f"the checkpoint reads environment-state sources {wanted}, but "
                f"environment_state_topics {list(self.environment_state_topics)} give {given} "
                "(a topic's last segment names its source)")
        return ""

    def camera_transport(self, index: int) -> str:
        """Transport (raw or compressed) of camera topic ``index``."""
        return self.camera_transports[index] if self.camera_transports else "raw"
