# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node: a lifecycle node that runs a (one-step) policy and commands the robot.

A thin shell over :mod:`snapflow_ros.runtime`: subscriptions feed the
:class:`ObservationBuffer`, an inference thread runs the :class:`PolicyRunner` on the latest
observation, the :class:`SafetyGuard` filters every chunk and command, and the
:class:`ActionChunkScheduler` turns chunks into ``trajectory_msgs/JointTrajectory`` messages
(``output_mode: trajectory``, one per chunk) or one point per control tick (``stream``).

Executors: all subscriptions and timers run on one ``SingleThreadedExecutor``; inference runs in
its own plain thread (on 2 cores a MultiThreadedExecutor drops inputs), and ``publish`` is
thread-safe. Parameters map one to one onto :class:`PolicyRuntimeConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.config_fields import ConfigError, replace_config
from snapflow_ros.nodes.ros_parameters import config_from_parameters, declare_config_parameters
from snapflow_ros.nodes.trajectory_message import trajectory_message
from snapflow_ros.runtime.chunk_scheduler import ActionChunkScheduler
from snapflow_ros.runtime.config import (
    PolicyRuntimeConfig,
    resolve_for_policy,
    validate_runtime_change,
)
from snapflow_ros.runtime.image_decoding import InputRejected
from snapflow_ros.runtime.latency_tracker import LatencyTracker
from snapflow_ros.runtime.observation_buffer import ObservationBuffer
from snapflow_ros.runtime.safety_guard import SafetyGuard

NODE_NAME = "snapflow_policy"
LOG_THROTTLE_S = 2.0
# Under simulated time, wall seconds of a still clock before the last trajectory is sent again.
LOCKSTEP_RESEND_S = 1.0
LATENCY_LABELS = ("preprocess", "model", "postprocess", "guard", "input_to_publish")


def _stamp_seconds(stamp: Any) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


class PolicyNode(LifecycleNode):
    """Lifecycle node ``snapflow_policy``: cameras + joint states in, joint trajectories out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # Every field stays writable for ROS; _on_set_parameters allows the non-runtime ones
        # only while unconfigured (so a failed configure can be retried with another checkpoint).
        declare_config_parameters(self, PolicyRuntimeConfig, enforce_read_only=False)
        try:
            self._config = config_from_parameters(self, PolicyRuntimeConfig)
        except ConfigError as exc:
            self.get_logger().error(f"invalid parameters (configure will fail): {exc}")
            self._config = PolicyRuntimeConfig()
        self._configured = False
        self._active = False
        self._runner = None
        self._buffer: ObservationBuffer | None = None
        self._scheduler: ActionChunkScheduler | None = None
        self._guard: SafetyGuard | None = None
        self._latency = LatencyTracker(self._config.latency_window)
        self._action_names: tuple[str, ...] = ()
        self._input_subscriptions: list = []
        self._owned_timers: list = []
        self._command_pub = None
        self._diagnostics_pub = None
        self._latency_pub = None
        self._inference_thread: threading.Thread | None = None
        self._stop_inference = threading.Event()
        self._image_arrived = threading.Event()
        self._last_image_time: float | None = None
        # Under simulated time: the last trajectory sent and when the clock last moved (wall).
        self._last_trajectory: JointTrajectory | None = None
        self._clock_seen = (float("nan"), 0.0)
        self._stats_lock = threading.Lock()
        self._counters = {"chunks_produced": 0, "inference_errors": 0, "guard_refusals": 0,
                          "trajectories_published": 0, "commands_published": 0,
                          "trajectories_resent": 0}
        self._last_problem = ""
        self._was_stale = False
        self._state_label = "unconfigured"
        self._use_sim_time = False
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------------ parameters

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        fields = {f.name: f for f in dataclasses.fields(PolicyRuntimeConfig)}
        changes = {}
        for parameter in parameters:
            if parameter.name not in fields:
                continue  # use_sim_time and other node-wide parameters
            value = parameter.value
            if hasattr(value, "tolist"):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            runtime = fields[parameter.name].metadata.get("runtime", False)
            if self._configured and not runtime:
                return SetParametersResult(
                    successful=False,
                    reason=f"'{parameter.name}' is read-only once configured; "
                           "clean up the node first")
            if self._configured:
                ok, reason = validate_runtime_change(self._config, parameter.name, value)
                if not ok:
                    return SetParametersResult(successful=False, reason=reason)
            changes[parameter.name] = value
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new_config = replace_config(self._config, **changes)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._config = new_config
        if self._configured:
            self._apply_runtime_config(new_config)
            self.get_logger().info(
                "applied " + ", ".join(f"{k}={v}" for k, v in changes.items())
                + " (chunk settings from the next chunk)")
        return SetParametersResult(successful=True)

    def _apply_runtime_config(self, config: PolicyRuntimeConfig) -> None:
        self._scheduler.update_config(config)
        self._guard.update_config(config)
        self._buffer.update_config(config)
        if not config.task_topic:
            self._buffer.set_task(config.task)

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
        self._configured = True
        self._state_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        from snapflow_ros.runtime.policy_runner import PolicyRunner

        config = config_from_parameters(self, PolicyRuntimeConfig)
        self._use_sim_time = bool(self.get_parameter("use_sim_time").value)
        if not config.checkpoint:
            raise ConfigError("parameter 'checkpoint' is empty: set it to a checkpoint directory")
        started = time.perf_counter()
        seed = config.seed if config.seed >= 0 else None
        self._runner = PolicyRunner(config.checkpoint, device=config.device, seed=seed,
                                    num_threads=config.torch_threads,
                                    accelerate=config.accelerate,
                                    inference_dtype=config.inference_dtype)
        robot = self._runner.robot
        config = resolve_for_policy(config, robot.joint_names, robot.action_names,
                                    robot.camera_keys, self._runner.chunk_size)
        self._action_names = tuple(robot.action_names)
        self._runner.warmup(iterations=2, num_steps=config.num_steps, mode=config.sampler_mode,
                            task=config.task)
        self._config = config
        self._buffer = ObservationBuffer.from_config(config,
                                                     command_joint_names=self._action_names)
        self._scheduler = ActionChunkScheduler(config)
        self._guard = SafetyGuard(config, self._action_names)
        self._latency = LatencyTracker(config.latency_window)
        self._create_interfaces(config)
        self.get_logger().info(
            f"configured: {config.checkpoint} on {self._runner.device}, chunk "
            f"{self._runner.chunk_size}, {len(self._action_names)} joints, cameras "
            f"{list(config.camera_keys)} ({time.perf_counter() - started:.1f} s incl. warm-up)")

    def _qos(self, reliability: str, depth: int) -> QoSProfile:
        if reliability == "best_effort":
            profile = QoSProfile(depth=depth)
            profile.reliability = ReliabilityPolicy.BEST_EFFORT
            profile.history = qos_profile_sensor_data.history
            return profile
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)

    def _create_interfaces(self, config: PolicyRuntimeConfig) -> None:
        joint_qos = self._qos(config.joint_state_qos_reliability, config.joint_state_qos_depth)
        image_qos = self._qos(config.image_qos_reliability, config.image_qos_depth)
        self._input_subscriptions.append(self.create_subscription(
            JointState, config.joint_state_topic, self._on_joint_state, joint_qos))
        for index, (topic, key) in enumerate(zip(config.camera_topics, config.camera_keys)):
            if config.camera_transport(index) == "compressed":
                callback = self._compressed_image_callback(key)
                self._input_subscriptions.append(self.create_subscription(
                    CompressedImage, topic, callback, image_qos))
            else:
                callback = self._image_callback(key)
                self._input_subscriptions.append(self.create_subscription(
                    Image, topic, callback, image_qos))
        if config.task_topic:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            latched.durability = rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL
            self._input_subscriptions.append(self.create_subscription(
                String, config.task_topic, self._on_task, latched))
        self._command_pub = self.create_lifecycle_publisher(
            JointTrajectory, config.command_topic, QoSProfile(depth=config.command_qos_depth))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._latency_pub = self.create_publisher(Float64MultiArray, "~/latency_ms", 10)
        self._owned_timers.append(self.create_timer(config.diagnostics_period_s,
                                                    self._publish_diagnostics))
        if config.output_mode == "stream":
            self._owned_timers.append(self.create_timer(config.control_period_s,
                                                        self._on_control_tick))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start acting: reset the schedule and guard, start the inference thread. -> active."""
        self._scheduler.reset()
        self._guard.reset()
        # Inputs from before a deactivation are stale, and a replayed recording restarts its
        # stamps: begin from an empty buffer.
        self._buffer.clear()
        self._last_image_time = None
        self._last_trajectory = None
        self._was_stale = False
        self._stop_inference.clear()
        self._inference_thread = threading.Thread(target=self._inference_loop,
                                                  name="snapflow_inference", daemon=True)
        self._active = True
        self._state_label = "active"
        result = super().on_activate(state)
        self._inference_thread.start()
        self.get_logger().info(f"active: n_act={self._config.n_act}, "
                               f"num_steps={self._config.num_steps}, "
                               f"output_mode={self._config.output_mode}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop acting; hold the last commanded position (or stop publishing). -> inactive."""
        self._stop_acting()
        if self._config.deactivate_behavior == "hold":
            self._publish_hold("deactivated")
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

    def _stop_acting(self) -> None:
        self._active = False
        self._stop_inference.set()
        if self._inference_thread is not None:
            self._inference_thread.join(timeout=30.0)
            self._inference_thread = None

    def _release(self) -> None:
        self._stop_acting()
        for timer in self._owned_timers:
            self.destroy_timer(timer)
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._owned_timers, self._input_subscriptions = [], []
        if self._command_pub is not None:
            self.destroy_lifecycle_publisher(self._command_pub)
        for publisher in (self._diagnostics_pub, self._latency_pub):
            if publisher is not None:
                self.destroy_publisher(publisher)
        self._command_pub = self._diagnostics_pub = self._latency_pub = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self._buffer = self._scheduler = self._guard = None
        self._configured = False
        self._state_label = "unconfigured"

    # ---------------------------------------------------------------------------- inputs

    def _clock_seconds(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp_check_clock(self) -> float | None:
        """The clock stamps are checked against; None under simulated time.

        A simulated clock only moves when a /clock message arrives, so it trails the stamps of
        the simulator's own observations: a "future" stamp there is not a fault.
        """
        return None if self._use_sim_time else self._clock_seconds()

    def _now(self) -> float:
        """The schedule's clock (s): monotonic, or the simulated clock under use_sim_time.

        A lockstep simulator advances only while it has commands, so input ages, action times
        and inference deadlines must all follow its clock; a real robot uses the monotonic
        clock, which no NTP step can move.
        """
        if self._use_sim_time:
            return self._clock_seconds()
        return time.monotonic()

    def _reject(self, what: str, exc: InputRejected) -> None:
        self._last_problem = f"{what} rejected: {exc}"
        self.get_logger().warning(self._last_problem, throttle_duration_sec=LOG_THROTTLE_S)

    def _on_joint_state(self, msg: JointState) -> None:
        if not self._active or self._buffer is None:
            return
        try:
            self._buffer.add_joint_state(msg.name, msg.position, receive_time=self._now(),
                                         stamp=_stamp_seconds(msg.header.stamp),
                                         clock_now=self._stamp_check_clock())
        except InputRejected as exc:
            self._reject("joint state", exc)

    def _image_callback(self, key: str):
        def on_image(msg: Image) -> None:
            if not self._active or self._buffer is None:
                return
            try:
                self._buffer.add_raw_image(key, msg.encoding, msg.height, msg.width, msg.step,
                                           msg.data, receive_time=self._now(),
                                           stamp=_stamp_seconds(msg.header.stamp),
                                           clock_now=self._stamp_check_clock())
            except InputRejected as exc:
                self._reject(f"camera {key}", exc)
                return
            self._image_arrived.set()
        return on_image

    def _compressed_image_callback(self, key: str):
        def on_image(msg: CompressedImage) -> None:
            if not self._active or self._buffer is None:
                return
            try:
                self._buffer.add_compressed_image(key, msg.format, msg.data,
                                                  receive_time=self._now(),
                                                  stamp=_stamp_seconds(msg.header.stamp),
                                                  clock_now=self._stamp_check_clock())
            except InputRejected as exc:
                self._reject(f"camera {key}", exc)
                return
            self._image_arrived.set()
        return on_image

    def _on_task(self, msg: String) -> None:
        if self._buffer is not None:
            self._buffer.set_task(msg.data)

    # ------------------------------------------------------------------------- inference

    def _inference_loop(self) -> None:
        period = self._config.control_period_s
        while not self._stop_inference.is_set():
            now = self._now()
            wait = self._scheduler.time_until_inference(now)
            if wait > 0:
                # Under simulated time the clock may run faster or slower than the wall: poll.
                if self._use_sim_time:
                    self._resend_if_clock_stalled(now)
                self._stop_inference.wait(min(wait, 0.002 if self._use_sim_time else period))
                continue
            if self._check_stale(now):
                self._stop_inference.wait(period)
                continue
            if self._config.wait_for_fresh_image:
                self._wait_for_fresh_image(due=now)
                now = self._now()
            observation, reason = self._buffer.snapshot_with_reason(now)
            if observation is None:
                self._last_problem = reason
                self.get_logger().warning(f"waiting for inputs: {reason}",
                                          throttle_duration_sec=LOG_THROTTLE_S)
                self._stop_inference.wait(period)
                continue
            self._last_image_time = self._newest_image_time(now)
            self._run_inference(observation, now)

    def _resend_if_clock_stalled(self, now: float) -> None:
        """Send the last trajectory again when the simulated clock stood still for a while.

        A lockstep simulator advances only on commands, so one lost trajectory (published
        before the simulator's subscription matched this node's publisher) would stall both
        sides until the simulator's own timeout. The copy carries the same stamp and points:
        the simulator queues the same targets again.
        """
        last_now, since = self._clock_seen
        wall = time.monotonic()
        if now != last_now:
            self._clock_seen = (now, wall)
        elif wall - since > LOCKSTEP_RESEND_S and self._last_trajectory is not None:
            self._command_pub.publish(self._last_trajectory)
            self._clock_seen = (now, wall)
            with self._stats_lock:
                self._counters["trajectories_resent"] += 1

    def _newest_image_time(self, now: float) -> float | None:
        """Receive time (schedule clock) of the newest camera frame in the buffer."""
        ages = [age for name, age in self._buffer.input_ages(now).items()
                if name != "joint_state" and age is not None]
        return now - min(ages) if ages else None

    def _wait_for_fresh_image(self, due: float) -> None:
        """Wait for a camera frame that arrives after ``due`` (when the chunk became due).

        The chunk then starts from a frame that is fresh, not up to a camera period old; the
        prefetch threshold absorbs the wait. At most ``max_input_age_s`` (wall clock); the first
        chunk after activation takes the newest frame at once.
        """
        # A lockstep simulator publishes a new frame only after it executed a command: under
        # simulated time, wait for a frame newer than the last one used instead.
        threshold = self._last_image_time if self._use_sim_time else due
        deadline = time.monotonic() + self._config.max_input_age_s
        while not self._stop_inference.is_set() and time.monotonic() < deadline:
            newest = self._newest_image_time(self._now())
            if newest is not None and (self._last_image_time is None or newest > threshold):
                return
            self._image_arrived.wait(min(0.005, max(0.0, deadline - time.monotonic())))
            self._image_arrived.clear()

    def _check_stale(self, now: float) -> bool:
        """Update the watchdog; on going stale, drop the plan and hold once."""
        stale = self._guard.update_inputs(self._buffer.input_ages(now))
        if stale and not self._was_stale:
            self._scheduler.clear_plan()
            self._last_problem = f"inputs stale: {self._guard.stale_reason}"
            self.get_logger().warning(f"{self._last_problem}; holding position",
                                      throttle_duration_sec=LOG_THROTTLE_S)
            self._publish_hold("stale inputs")
        elif not stale and self._was_stale:
            self.get_logger().info("inputs fresh again: resuming")
        self._was_stale = stale
        return stale

    def _run_inference(self, observation: Any, snapshot_time: float) -> None:
        config = self._config
        try:
            result = self._runner.infer(observation, config.num_steps, config.sampler_mode)
        except Exception as exc:  # noqa: BLE001 - a failed inference must never stop the node
            with self._stats_lock:
                self._counters["inference_errors"] += 1
            self._last_problem = f"inference failed: {exc}"
            self.get_logger().error(self._last_problem, throttle_duration_sec=LOG_THROTTLE_S)
            self._stop_inference.wait(config.control_period_s)
            return
        guard_start = time.perf_counter()
        checked = self._guard.filter_chunk(result.actions)
        if checked.actions is None:
            with self._stats_lock:
                self._counters["guard_refusals"] += 1
            self._last_problem = f"chunk refused: {checked.reason}"
            self.get_logger().warning(self._last_problem, throttle_duration_sec=LOG_THROTTLE_S)
            self._publish_hold(checked.reason)
            self._stop_inference.wait(config.control_period_s)
            return
        t_ready = self._now()
        self._scheduler.add_chunk(checked.actions, t_obs=observation.time, t_ready=t_ready)
        with self._stats_lock:
            self._counters["chunks_produced"] += 1
        if config.output_mode == "trajectory":
            self._publish_chunk_trajectory(t_ready, observation)
        timings = dict(result.timings_ms)
        timings["guard"] = (time.perf_counter() - guard_start) * 1e3
        # From the arrival of the newest camera frame used to the command's publication.
        camera_ages = [age for name, age in observation.ages.items() if name != "joint_state"]
        arrival = snapshot_time - min(camera_ages) if camera_ages else observation.time
        timings["input_to_publish"] = (self._now() - arrival) * 1e3
        self._latency.record_many(timings)
        if self._latency_pub is not None:
            message = Float64MultiArray(data=[float(timings.get(k, 0.0)) for k in LATENCY_LABELS])
            message.layout.dim = [MultiArrayDimension(label=",".join(LATENCY_LABELS),
                                                      size=len(LATENCY_LABELS), stride=1)]
            self._latency_pub.publish(message)

    # --------------------------------------------------------------------------- outputs

    def _trajectory_message(self, points: list[tuple[float, np.ndarray]]) -> JointTrajectory:
        return trajectory_message(self._action_names, points,
                                  self.get_clock().now().to_msg())

    def _publish_chunk_trajectory(self, now: float, observation: Any) -> None:
        points = self._scheduler.take_trajectory(now)
        if not points:
            return
        filtered = self._guard.filter_trajectory(points, now,
                                                 measured=observation.measured_position)
        if filtered.actions is None:
            self._last_problem = f"trajectory refused: {filtered.reason}"
            self.get_logger().warning(self._last_problem, throttle_duration_sec=LOG_THROTTLE_S)
            return
        if not filtered.publish:
            return  # dry run: computed and reported only
        timed = [(t, a) for (t, _), a in zip(points, filtered.actions)]
        message = self._trajectory_message(timed)
        self._command_pub.publish(message)
        self._last_trajectory = message
        with self._stats_lock:
            self._counters["trajectories_published"] += 1
            self._counters["commands_published"] += len(timed)

    def _on_control_tick(self) -> None:
        """Stream mode: one guarded point per control tick."""
        if not self._active or self._scheduler is None:
            return
        command = self._scheduler.next_command(self._now())
        if command is None:
            return
        _, action = command
        filtered = self._guard.filter_command(action, measured=self._buffer.measured_position())
        if filtered.actions is None or not filtered.publish:
            return
        self._command_pub.publish(self._trajectory_message(
            [(self._config.control_period_s, filtered.actions)]))
        with self._stats_lock:
            self._counters["commands_published"] += 1

    def _publish_hold(self, why: str) -> None:
        """Command the position in force now (never a new one).

        Nothing when this node has not commanded anything yet: the robot is then under whatever
        controlled it before, and a hold at the measured position would fight it.
        """
        if self._guard is None or self._command_pub is None or self._config.dry_run:
            return
        hold = self._guard.hold_position(None, now=self._now())
        if hold is None or not np.all(np.isfinite(hold)):
            return
        self._command_pub.publish(self._trajectory_message([(self._config.control_period_s,
                                                             hold)]))
        self.get_logger().info(f"holding position ({why})", throttle_duration_sec=LOG_THROTTLE_S)

    # ---------------------------------------------------------------------- diagnostics

    def diagnostics_values(self) -> dict[str, Any]:
        """Everything the node reports, as plain values (also used by tests and benchmarks)."""
        now = self._now()
        values: dict[str, Any] = {"state": self._state_label}
        with self._stats_lock:
            values.update(self._counters)
        if self._buffer is not None:
            values["input_age_s"] = {k: (None if v is None else round(v, 4))
                                     for k, v in self._buffer.input_ages(now).items()}
            values["input_rate_hz"] = {k: round(v, 2)
                                       for k, v in self._buffer.input_rates(now).items()}
            values["inputs_rejected"] = self._buffer.rejection_counts()
            values["inputs_accepted"] = self._buffer.accepted_counts()
        if self._scheduler is not None:
            values["schedule"] = self._scheduler.stats()
        if self._guard is not None:
            values["guard"] = {k: v for k, v in self._guard.counts().items() if v}
            values["stale"] = self._guard.stale
        values["latency_ms"] = {stage: {k: round(v, 3) for k, v in stats.items()}
                                for stage, stats in self._latency.summary().items()}
        values["n_act"] = self._config.n_act
        values["num_steps"] = self._config.num_steps
        values["last_problem"] = self._last_problem
        return values

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None:
            return
        values = self.diagnostics_values()
        status = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id="snapflow_ros")
        if values.get("stale"):
            status.level, status.message = DiagnosticStatus.WARN, self._last_problem or "stale"
        elif values.get("inference_errors"):
            status.level, status.message = DiagnosticStatus.WARN, self._last_problem
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"{values['state']}; {self._last_problem}".rstrip("; ")
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            status.values.append(KeyValue(key=key, value=text))
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(message)


def main(args: list[str] | None = None) -> int:
    """Run the policy node until SIGINT (``ros2 run snapflow_ros policy_node``)."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = PolicyNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._release()
        rclpy.try_shutdown()
        executor.shutdown()
        node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
