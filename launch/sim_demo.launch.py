# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated ALOHA robot and the SnapFlow policy node, the policy configured and activated.

    ros2 launch snapflow_ros sim_demo.launch.py checkpoint:=outputs/sim_demo_quick/snapflow

Both nodes read config/sim_demo.yaml: the robot runs in lockstep (a control step per command,
simulated time on /clock) and the policy node follows that clock (use_sim_time), so the demo
runs at whatever speed the machine allows and behaves the same on any machine.

The simulator needs gym-aloha on MuJoCo 2.3.7 with numpy<2, which usually cannot live in the
Python of a ROS 2 distro. Point ``sim_python`` at the interpreter of an environment that has it
(``make setup-sim`` creates ``.venv-sim``; it also needs rclpy: the ROS 2 wheels, or
``SNAPFLOW_USE_SYSTEM_ROS=1``); it then runs ``<sim_python> -m snapflow_ros.nodes.sim_robot_node``
instead of the ``sim_robot`` executable. Processes of one graph must share the DDS transport
settings (see the README on Fast DDS and large images).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import (
    EqualsSubstitution,
    LaunchConfiguration,
    NotEqualsSubstitution,
)
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """sim_robot (or its module run by sim_python) and the policy node with autostart."""
    default_params = os.path.join(get_package_share_directory("snapflow_ros"), "config",
                                  "sim_demo.yaml")
    params_file = LaunchConfiguration("params_file")
    sim_python = LaunchConfiguration("sim_python")
    arguments = [
        DeclareLaunchArgument("checkpoint", description="Checkpoint or training run directory."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameters of sim_robot and snapflow_policy."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate the policy node on start."),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda."),
        DeclareLaunchArgument("num_steps", default_value="1",
                              description="Sampler steps per chunk (1: SnapFlow's jump)."),
        DeclareLaunchArgument("n_act", default_value="10",
                              description="Actions executed per chunk."),
        DeclareLaunchArgument("task", default_value="transfer_cube",
                              description="Simulated task: transfer_cube or insertion."),
        DeclareLaunchArgument("seed", default_value="100000",
                              description="Seed of the first episode (held-out from 100000)."),
        DeclareLaunchArgument("sim_python", default_value="",
                              description="Python of the simulator environment (empty: the "
                                          "sim_robot executable)."),
    ]
    sim_parameters = {"task": LaunchConfiguration("task"), "seed": LaunchConfiguration("seed")}
    sim_robot = Node(
        package="snapflow_ros",
        executable="sim_robot",
        name="sim_robot",
        output="screen",
        parameters=[params_file, sim_parameters],
        condition=IfCondition(EqualsSubstitution(sim_python, "")),
    )
    sim_robot_in_sim_env = ExecuteProcess(
        cmd=[sim_python, "-m", "snapflow_ros.nodes.sim_robot_node", "--ros-args",
             "--params-file", params_file, "-p", ["task:=", LaunchConfiguration("task")],
             "-p", ["seed:=", LaunchConfiguration("seed")]],
        name="sim_robot",
        output="screen",
        additional_env={"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
        condition=IfCondition(NotEqualsSubstitution(sim_python, "")),
    )
    policy = LifecycleNode(
        package="snapflow_ros",
        executable="policy_node",
        name="snapflow_policy",
        namespace="",
        output="screen",
        parameters=[params_file,
                    {"checkpoint": LaunchConfiguration("checkpoint"),
                     "device": LaunchConfiguration("device"),
                     "num_steps": LaunchConfiguration("num_steps"),
                     "n_act": LaunchConfiguration("n_act")}],
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
    return LaunchDescription([*arguments, sim_robot, sim_robot_in_sim_env, policy,
                              activate_when_inactive, configure])
