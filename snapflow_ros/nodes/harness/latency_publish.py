# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS publish stage of ``snapflow bench latency``: chunks sent as the policy node sends them.

Each chunk becomes a ``trajectory_msgs/JointTrajectory`` built by the node's own builder
(:func:`snapflow_ros.nodes.trajectory_message.trajectory_message`: one point per control period,
stamped now) and is published on ``snapflow_latency_bench/trajectory`` by a node in a private
rclpy context. The benchmark (:func:`snapflow_ros.evaluation.latency_bench.run_latency_benchmark`)
takes :meth:`RosTrajectoryPublisher.create` as its ``publisher_factory``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

TOPIC = "snapflow_latency_bench/trajectory"


class RosTrajectoryPublisher:
    """Publishes chunks as ``trajectory_msgs/JointTrajectory``, built as the policy node does.

    Imports rclpy when constructed (the stage is optional): use :meth:`create`, which returns
    None and the reason where rclpy is not installed or does not start.
    """

    def __init__(self, joint_names: Sequence[str], period_s: float) -> None:
        import rclpy
        from rclpy.context import Context
        from trajectory_msgs.msg import JointTrajectory

        from snapflow_ros.nodes.trajectory_message import trajectory_message

        self._trajectory_message = trajectory_message
        self._context = Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node(f"snapflow_latency_bench_{os.getpid()}",
                                       context=self._context)
        self._publisher = self._node.create_publisher(JointTrajectory, TOPIC, 10)
        self.joint_names = list(joint_names)
        self.period_s = float(period_s)

    @classmethod
    def create(cls, joint_names: Sequence[str],
               period_s: float) -> tuple[RosTrajectoryPublisher | None, str]:
        """``(publisher, "")``, or ``(None, why)`` where rclpy is missing or fails to start."""
        try:
            return cls(joint_names, period_s), ""
        except ImportError as exc:
            return None, f"rclpy not installed ({exc.name})"
        except Exception as exc:  # noqa: BLE001 - an optional stage: report and go on
            return None, f"rclpy failed to start ({type(exc).__name__}: {exc})"

    def publish(self, actions: np.ndarray) -> None:
        """Build and publish one trajectory of ``actions`` ``(H, A)`` (one point per period)."""
        points = [(index * self.period_s, action) for index, action in enumerate(actions)]
        message = self._trajectory_message(self.joint_names, points,
                                           stamp=self._node.get_clock().now().to_msg())
        self._publisher.publish(message)

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self._node.destroy_node()
        self._context.try_shutdown()
