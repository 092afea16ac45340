# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node: a lifecycle node that runs a (one-step) policy and commands the robot.

A thin shell over :class:`~snapflow_ros.runtime.policy_controller.PolicyController`, which does
the control work without ROS. The node reads its parameters into a :class:`PolicyNodeConfig`
once (later changes pass :func:`~snapflow_ros.nodes.ros_parameters.apply_parameter_changes`),
owns subscriptions, publishers and timers, turns messages into the controller's inputs, and
publishes what it emits: ``trajectory_msgs/JointTrajectory`` (one per chunk, or one point per
control tick with ``output_mode: stream``), holds, and each inference's latency.

Subscriptions and timers run on one ``SingleThreadedExecutor``; inference runs in the controller's
own thread (on 2 cores a MultiThreadedExecutor drops inputs); publish is thread-safe.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from rclpy.time import Time
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.nodes import node_process, ros_parameters
from snapflow_ros.nodes.input_subscriptions import subscribe_inputs
from snapflow_ros.nodes.trajectory_message import trajectory_message
from snapflow_ros.runtime.config import PolicyNodeConfig
from snapflow_ros.runtime.policy_controller import (
    LATENCY_LABELS,
    LatencyRecord,
    PolicyController,
    forget_policy,
)

NODE_NAME = "snapflow_policy"


class PolicyNode(LifecycleNode):
    """Lifecycle node ``snapflow_policy``: cameras + joint states in, joint trajectories out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # Every field stays writable for ROS; _on_set_parameters allows the non-runtime ones
        # only while unconfigured (so a failed configure can be retried with another checkpoint).
        ros_parameters.declare_config_parameters(self, PolicyNodeConfig, enforce_read_only=False)
        self._config: PolicyNodeConfig | None = None
        self._parameter_config = self._config  # before it was fitted to the checkpoint
        self._config_error = ""
        self._read_parameters()
        self._controller: PolicyController | None = None
        self._input_subscriptions, self._owned_timers = [], []
        self._command_pub = self._diagnostics_pub = self._latency_pub = None
        self._state_label = "unconfigured"
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------------ parameters

    def _read_parameters(self, parameters: list | None = None) -> None:
        """Build the config from the parameters (and ``parameters`` about to be set)."""
        try:
            overrides = {p.name: p.value for p in parameters or []}
            self._config = ros_parameters.config_from_parameters(self, PolicyNodeConfig,
                                                                 overrides=overrides)
            self._config_error = ""
        except ConfigError as exc:
            self._config, self._config_error = None, str(exc)
            self.get_logger().error(f"invalid parameters (configure will fail): {exc}")

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        if self._config is None:
            # Parameters that formed no valid config: accept, and try again with the new ones.
            self._read_parameters(parameters)
            return SetParametersResult(successful=True)
        result, config = ros_parameters.apply_parameter_changes(
            self._config, parameters, configured=self._controller is not None)
        if result.successful and config is not self._config:
            self._config = config
            if self._controller is not None:
                self._controller.update_config(config.controller)
                changes = ", ".join(f"{p.name}={p.value}" for p in parameters)
                self.get_logger().info(f"applied {changes} (chunk settings from the next chunk)")
        return result

    # ------------------------------------------------------------------------- lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and check the checkpoint, warm it up, create inputs and outputs.

        SUCCESS -> inactive. FAILURE (reason logged) -> unconfigured, nothing held.
        """
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node clean
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._state_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        if self._config is None:
            raise ConfigError(f"invalid parameters: {self._config_error}")
        started = time.perf_counter()
        # Under use_sim_time the schedule follows the (lockstep) simulator's clock; a real robot
        # uses the monotonic clock, which no NTP step can move.
        simulated = bool(self.get_parameter("use_sim_time").value)
        ros_ns = lambda: self.get_clock().now().nanoseconds  # noqa: E731
        self._controller = controller = PolicyController.load(
            self._config.controller, stamp_clock=ros_ns,
            clock=(lambda: ros_ns() * 1e-9) if simulated else time.monotonic,
            simulated_time=simulated, task_from_topic=bool(self._config.task_topic),
            logger=self.get_logger())
        self._parameter_config = self._config
        self._config = config = replace(self._config, controller=controller.config)
        unused = config.check_environment_state(
            config.controller.observation.environment_state_names)
        if unused:
            self.get_logger().warning(unused)
        self._create_interfaces(config)
        self.get_logger().info(
            f"configured: {config.controller.runner.checkpoint} on {controller.device}, chunk "
            f"{config.controller.scheduler.chunk_size}, {len(controller.action_names)} joints, "
            f"cameras {list(config.controller.observation.camera_keys)} "
            f"({time.perf_counter() - started:.1f} s incl. warm-up)")

    def _create_interfaces(self, config: PolicyNodeConfig) -> None:
        controller = self._controller
        self._input_subscriptions += subscribe_inputs(self, config, controller)
        self._command_pub = self.create_lifecycle_publisher(
            JointTrajectory, config.command_topic, QoSProfile(depth=config.command_qos_depth))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._latency_pub = self.create_publisher(Float64MultiArray, "~/latency_ms", 10)
        self._owned_timers.append(self.create_timer(config.diagnostics_period_s,
                                                    self._publish_diagnostics))
        if config.controller.scheduler.output_mode == "stream":
            self._owned_timers.append(self.create_timer(
                config.controller.scheduler.control_period_s,
                lambda: self._publish(controller.control_tick())))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start acting from empty inputs: the controller's inference thread starts. -> active."""
        result = super().on_activate(state)
        self._controller.start(self._publish)
        self._state_label = "active"
        scheduler, runner = self._config.controller.scheduler, self._config.controller.runner
        self.get_logger().info(f"active: n_act={scheduler.n_act}, num_steps={runner.num_steps}, "
                               f"output_mode={scheduler.output_mode}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop acting; hold the last commanded position (or stop publishing). -> inactive."""
        self._controller.stop()
        if self._config.deactivate_behavior == "hold":
            self._publish(self._controller.hold("deactivated"))
        self._state_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model (GPU memory too), inputs and outputs. SUCCESS -> unconfigured."""
        self._release()
        self.get_logger().info("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from any state. SUCCESS -> finalized."""
        self._release()
        self._state_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._controller is not None:
            self._controller.close()
            self._controller = None
            # The next configure may load another checkpoint: resolve afresh, keeping the
            # runtime changes made meanwhile.
            self._config = replace(self._config, controller=forget_policy(
                self._config.controller, self._parameter_config.controller))
        for destroy, entities in ((self.destroy_timer, self._owned_timers),
                                  (self.destroy_subscription, self._input_subscriptions),
                                  (self.destroy_lifecycle_publisher, [self._command_pub]),
                                  (self.destroy_publisher, [self._diagnostics_pub,
                                                            self._latency_pub])):
            for entity in entities:
                if entity is not None:
                    destroy(entity)
        self._owned_timers, self._input_subscriptions = [], []
        self._command_pub = self._diagnostics_pub = self._latency_pub = None
        self._state_label = "unconfigured"

    # --------------------------------------------------------------------------- outputs

    def _publish(self, output: Any) -> None:
        """Publish what the controller emitted: a trajectory or hold, or a latency record."""
        if output is None:
            return
        if isinstance(output, LatencyRecord):
            if self._latency_pub is not None:
                message = Float64MultiArray(data=[output.timings_ms[k] for k in LATENCY_LABELS])
                message.layout.dim = [MultiArrayDimension(label=",".join(LATENCY_LABELS),
                                                          size=len(LATENCY_LABELS), stride=1)]
                self._latency_pub.publish(message)
            return
        if self._command_pub is not None and self._controller is not None:
            stamp = Time(nanoseconds=output.stamp_ns).to_msg()
            self._command_pub.publish(trajectory_message(self._controller.action_names,
                                                         output.points, stamp))

    def diagnostics_values(self) -> dict[str, Any]:
        """Everything the node reports, as plain values (also used by tests and benchmarks)."""
        values: dict[str, Any] = {"state": self._state_label}
        if self._controller is not None:
            values.update(self._controller.diagnostics())
        return values

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None or self._controller is None:
            return
        values = self.diagnostics_values()
        healthy, text = self._controller.health(self._state_label)
        status = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id="snapflow_ros",
                                  level=DiagnosticStatus.OK if healthy else DiagnosticStatus.WARN,
                                  message=text)
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            status.values.append(KeyValue(key=key, value=text))
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(message)


def main(args: list[str] | None = None) -> int:
    """Run the policy node until SIGINT (``ros2 run snapflow_ros policy_node``)."""
    rclpy.init(args=args if args is not None else sys.argv)
    node_process.stop_with_parent()
    node = PolicyNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        node_process.spin_until_shutdown(executor)
    finally:
        node._release()
        rclpy.try_shutdown()
        executor.shutdown()
        node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
