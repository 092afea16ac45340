# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start the SnapFlow policy node as a lifecycle node; with autostart, configure and activate it.

    ros2 launch snapflow_ros policy.launch.py checkpoint:=/path/to/run \
        camera_topic:=/camera/image_raw joint_states_topic:=/joint_states \
        command_topic:=/arm_controller/joint_trajectory

Without `ros2 launch` (PyPI wheels): `snapflow bringup --checkpoint /path/to/run` does the same.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """The policy node with its parameter file, topic remaps and optional autostart."""
    default_params = os.path.join(get_package_share_directory("snapflow_ros"), "config",
                                  "policy.yaml")
    arguments = [
        DeclareLaunchArgument("checkpoint", description="Checkpoint or run directory."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file of the policy node."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate the node on start."),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda."),
        DeclareLaunchArgument("camera_topic", default_value="camera/image_raw",
                              description="Remap of the camera input."),
        DeclareLaunchArgument("joint_states_topic", default_value="joint_states",
                              description="Remap of the joint state input."),
        DeclareLaunchArgument("command_topic", default_value="joint_trajectory",
                              description="Remap of the JointTrajectory output."),
        DeclareLaunchArgument("task_topic", default_value="task",
                              description="Remap of the task text input."),
    ]
    policy = LifecycleNode(
        package="snapflow_ros",
        executable="policy_node",
        name="snapflow_policy",
        namespace="",
        output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"checkpoint": LaunchConfiguration("checkpoint"),
                     "device": LaunchConfiguration("device")}],
        remappings=[("camera/image_raw", LaunchConfiguration("camera_topic")),
                    ("joint_states", LaunchConfiguration("joint_states_topic")),
                    ("joint_trajectory", LaunchConfiguration("command_topic")),
                    ("task", LaunchConfiguration("task_topic"))],
    )
    autostart = IfCondition(LaunchConfiguration("autostart"))
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                          transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart)
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=policy, start_state="configuring", goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(policy),
                transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=autostart)
    return LaunchDescription([*arguments, policy, activate_when_inactive, configure])
