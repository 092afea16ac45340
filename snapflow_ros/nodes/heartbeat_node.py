# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A minimal lifecycle node that publishes a heartbeat while active.

It checks that a machine's ROS 2 set-up (DDS transport, lifecycle services, parameters) works
before the policy node is brought up: ``ros2 run snapflow_ros heartbeat_node`` (or
``python -m snapflow_ros.nodes.heartbeat_node``), then drive it with ``snapflow lifecycle set``.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String

from snapflow_ros.nodes.node_process import spin_until_shutdown, stop_with_parent


class HeartbeatNode(LifecycleNode):
    """Publishes ``heartbeat`` (std_msgs/String) at ``rate_hz`` while active."""

    def __init__(self, node_name: str = "snapflow_heartbeat") -> None:
        super().__init__(node_name)
        self.declare_parameter("rate_hz", 10.0)
        self._publisher = None
        self._timer = None
        self._count = 0

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create the publisher and timer. SUCCESS -> inactive."""
        self._publisher = self.create_lifecycle_publisher(String, "heartbeat", 10)
        period = 1.0 / max(self.get_parameter("rate_hz").value, 1e-3)
        self._timer = self.create_timer(period, self._beat)
        self.get_logger().info("configured")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start publishing (the base class enables lifecycle publishers). SUCCESS -> active."""
        self.get_logger().info("activated")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop publishing. SUCCESS -> inactive."""
        self.get_logger().info("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the publisher and timer. SUCCESS -> unconfigured."""
        self._release()
        self.get_logger().info("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any state. SUCCESS -> finalized."""
        self._release()
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._publisher is not None:
            self.destroy_lifecycle_publisher(self._publisher)
            self._publisher = None

    def _beat(self) -> None:
        # Timers keep firing while inactive; lifecycle publishers drop those messages anyway.
        if self._publisher is None:
            return
        self._count += 1
        self._publisher.publish(String(data=f"heartbeat {self._count}"))


def main(args: list[str] | None = None) -> int:
    """Run the heartbeat node until SIGINT or SIGTERM, or until the process that started it ends."""
    stop_with_parent()
    rclpy.init(args=args if args is not None else sys.argv)
    node = HeartbeatNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    finally:
        rclpy.try_shutdown()
        executor.shutdown()
        node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
