# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated ALOHA robot as a ROS 2 node (``sim_robot``), talking like a real robot.

Interface (topic names relative, so they can be namespaced and remapped):

- publishes ``camera/image_raw`` (sensor_msgs/Image, rgb8, ``image_size`` square) and
  ``joint_states`` (sensor_msgs/JointState, the 14 ``ALOHA_JOINT_NAMES``: radians and
  normalised grippers, 0 closed .. 1 open) after every control step;
- publishes ``object_poses`` (geometry_msgs/PoseArray, frame ``world``: transfer_cube and
  transfer_cube_obstacle [cube], insertion [peg, socket], from the physics) with the same
  stamp, before the image and joint states of that step, unless ``publish_object_poses`` is
  false;
- subscribes ``joint_trajectory`` (trajectory_msgs/JointTrajectory): a point is the position to
  reach at ``header.stamp + time_from_start``, executed during the step that ends then (as
  ros2_control's JointTrajectoryController; a zero stamp means on receipt), a new message replaces
  the not-yet-executed points, a single point with ``time_from_start = 0`` is a streamed
  command, an empty message holds the current target; joints left out hold their target
  (see :mod:`snapflow_ros.sim.trajectory_follower`); a stamp more than 60 s away from the
  robot's clock (another clock) is treated as zero, with a warning;
- publishes ``episode/status`` (std_msgs/String, JSON: task, seed, episode, step, reward,
  max_reward, success, first_success_step, done, stamp_s, command_digest: a digest of every
  executed target, lockstep_timeouts, obstacle_touched) every ``status_every_steps`` steps, at
  every reset and when an episode ends;
- service ``~/reset`` (std_srvs/Trigger): start the next episode now. To reset to a given seed,
  set the ``seed`` parameter, then call ``~/reset``. The reply's message is the new status JSON.

Modes (parameter ``mode``):

- ``realtime``: one control step every 20 ms of wall time, stamps from the node's clock;
- ``lockstep``: as fast as the commands come. Publishes ``/clock`` (rosgraph_msgs/Clock) with
  simulated time (from 0.02 s, 20 ms per step, monotonic across episodes; observations carry
  these stamps). A policy answers an observation with a trajectory stamped with the
  observation's stamp (or runs with ``use_sim_time:=true`` and stamps with its clock).
  A step is executed once the queued trajectory reaches its tick (e.g. the policy answered the
  last observation with a point stamped with that observation's stamp); after
  ``lockstep_timeout_s`` of wall time without one, the last target is held for one step.
  Closed-loop results then do not depend on how fast the machine is.

Large images need a DDS transport that carries them: see the README (Fast DDS shared memory).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

import rclpy
from geometry_msgs.msg import Pose, PoseArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.nodes.node_process import spin_until_shutdown, stop_with_parent
from snapflow_ros.nodes.ros_parameters import (
    apply_parameter_changes,
    config_from_parameters,
    declare_config_parameters,
)
from snapflow_ros.sim.aloha_env import (
    ALOHA_JOINT_NAMES,
    CONTROL_PERIOD_S,
    AlohaSimConfig,
    poses_in_ros_order,
)
from snapflow_ros.sim.demo_recording import EVAL_SEED_START
from snapflow_ros.sim.sim_robot import TICK_NS, SimRobot

MODES = ("realtime", "lockstep")
_JOINT_INDEX = {name: i for i, name in enumerate(ALOHA_JOINT_NAMES)}
# Realtime: after this many missed ticks the schedule restarts from now instead of catching up.
_MAX_CATCH_UP_TICKS = 5
# Trajectory stamps further than this from the robot's clock were taken on another clock.
_CLOCK_MISMATCH_NS = 60 * 10**9


@dataclasses.dataclass(frozen=True)
class SimRobotNodeConfig:
    """How the sim robot node paces steps and runs episodes (the task is AlohaSimConfig)."""

    mode: str = param("realtime", "realtime: 50 Hz wall clock; lockstep: a step per command, "
                      "publishes /clock with simulated time.", choices=MODES)
    seed: int = param(
        EVAL_SEED_START, "Seed of the next episode; later episodes count up from it. Set it, "
        "then call ~/reset, to reset to a given seed. Evaluation seeds start at 100000.",
        low=0, high=2**32 - 1, runtime=True)
    auto_reset: bool = param(True, "Start the next episode (next seed) when one ends.",
                             runtime=True)
    success_extra_steps: int = param(
        0, "Steps an episode continues after the first success (it ends at episode_steps "
        "at the latest).", low=0, high=100000, runtime=True)
    lockstep_timeout_s: float = param(
        5.0, "Lockstep: wall seconds to wait for a command before holding the last target.",
        low=0.0, high=3600.0, runtime=True)
    status_every_steps: int = param(1, "Publish episode/status every this many steps.",
                                    low=1, high=100000, runtime=True)
    interpolate: bool = param(True, "Interpolate linearly between trajectory points "
                              "(false: hold each point until the next).")
    publish_object_poses: bool = param(
        True, "Publish object_poses (geometry_msgs/PoseArray, frame world) every step, "
        "stamped like joint_states.")

    def __post_init__(self) -> None:
        check_config(self)


class _ResetRequest:
    """A ~/reset call waiting for the physics thread."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.status_json = ""


def _stamp(ns: int):
    return Time(nanoseconds=int(ns)).to_msg()


class SimRobotNode(Node):
    """Wraps :class:`~snapflow_ros.sim.sim_robot.SimRobot`; physics runs in its own thread."""

    def __init__(self, node_name: str = "sim_robot", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_config_parameters(self, AlohaSimConfig)
        declare_config_parameters(self, SimRobotNodeConfig)
        self.sim_config: AlohaSimConfig = config_from_parameters(self, AlohaSimConfig)
        self.config: SimRobotNodeConfig = config_from_parameters(self, SimRobotNodeConfig)
        self.lockstep = self.config.mode == "lockstep"
        self.exit_code = 0
        self._cond = threading.Condition()
        self._robot: SimRobot | None = None
        # Lockstep: simulated time of the next tick. It starts one tick after zero because a zero
        # stamp means "now" in ROS (and "no clock yet" to nodes with use_sim_time).
        self._now_ns = TICK_NS
        self._reset_request: _ResetRequest | None = None
        self._stopping = False
        self._late_ticks = 0

        observations = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                                  history=HistoryPolicy.KEEP_LAST)
        self._image_pub = self.create_publisher(Image, "camera/image_raw", observations)
        self._joint_pub = self.create_publisher(JointState, "joint_states", observations)
        self._poses_pub = (self.create_publisher(PoseArray, "object_poses", observations)
                           if self.config.publish_object_poses else None)
        # Deep history: an evaluator must not miss the ``done`` message of a fast episode.
        self._status_pub = self.create_publisher(String, "episode/status", 100)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if self.lockstep else None
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._thread = threading.Thread(target=self._run, name="sim_physics", daemon=True)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the physics thread (it creates the simulator and the first episode)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the physics thread and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _clock_ns(self) -> int:
        return self._now_ns if self.lockstep else self.get_clock().now().nanoseconds

    # -- callbacks (executor thread) ------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        names = list(msg.joint_names) or list(ALOHA_JOINT_NAMES)
        unknown = [n for n in names if n not in _JOINT_INDEX]
        if unknown or len(set(names)) != len(names):
            self.get_logger().warning(
                f"joint_trajectory ignored: unknown or repeated joints {unknown or names}; "
                f"expected names from {list(ALOHA_JOINT_NAMES)}", throttle_duration_sec=5.0)
            return
        if any(len(p.positions) != len(names) for p in msg.points):
            self.get_logger().warning("joint_trajectory ignored: a point's positions do not "
                                      "match joint_names", throttle_duration_sec=5.0)
            return
        index = [_JOINT_INDEX[n] for n in names]
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        with self._cond:
            robot = self._robot
            if robot is None:
                return
            if not msg.points:
                robot.follower.clear()
                return
            now = self._clock_ns()
            start = stamp_ns or now
            if abs(start - now) > _CLOCK_MISMATCH_NS:
                # Stamped on another clock (wall time against lockstep's simulated time, or the
                # reverse): executing it "on receipt" is the only meaningful reading.
                self.get_logger().warning(
                    f"joint_trajectory stamped {(start - now) * 1e-9:+.1f} s from this robot's "
                    "clock: executed on receipt. In lockstep mode run the commanding node with "
                    "use_sim_time:=true (or echo the observation stamp)",
                    throttle_duration_sec=10.0)
                start = now
            times, targets = [], []
            for point in msg.points:
                target = robot.follower.last_command
                target[index] = point.positions
                times.append(start + point.time_from_start.sec * 10**9
                             + point.time_from_start.nanosec)
                targets.append(target)
            try:
                queued = robot.follower.insert(times, targets, now)
            except ValueError as exc:
                self.get_logger().warning(f"joint_trajectory ignored: {exc}",
                                          throttle_duration_sec=5.0)
                return
            self._cond.notify_all()
        if not queued:
            self.get_logger().debug("joint_trajectory from before the current episode ignored")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        reset = _ResetRequest()
        with self._cond:
            self._reset_request = reset
            self._cond.notify_all()
        response.success = reset.finished.wait(timeout=30.0)
        response.message = reset.status_json if response.success else "reset timed out"
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        result, config = apply_parameter_changes(self.config, params)
        if config is self.config:
            return result
        with self._cond:
            self.config = config
            if self._robot is not None:
                if any(p.name == "seed" for p in params):
                    self._robot.next_seed = config.seed
                self._robot.success_extra_steps = config.success_extra_steps
            self._cond.notify_all()
        return result

    # -- physics thread -------------------------------------------------------------------------
    def _publish_observation(self, stamp_ns: int) -> None:
        obs = self._robot.observation
        stamp = _stamp(stamp_ns)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp))
        if self._poses_pub is not None:
            # Before the joint states: a policy triggered by them finds this step's poses.
            poses = PoseArray()
            poses.header.stamp = stamp
            poses.header.frame_id = "world"
            for x, y, z, qx, qy, qz, qw in poses_in_ros_order(obs.object_poses).tolist():
                pose = Pose()
                pose.position.x, pose.position.y, pose.position.z = x, y, z
                pose.orientation.x, pose.orientation.y = qx, qy
                pose.orientation.z, pose.orientation.w = qz, qw
                poses.poses.append(pose)
            self._poses_pub.publish(poses)
        image = Image()
        image.header.stamp = stamp
        image.header.frame_id = self.sim_config.camera
        image.height, image.width = obs.image.shape[:2]
        image.encoding = "rgb8"
        image.step = obs.image.shape[1] * 3
        image.data = obs.image.tobytes()
        self._image_pub.publish(image)
        joints = JointState()
        joints.header.stamp = stamp
        joints.name = list(ALOHA_JOINT_NAMES)
        joints.position = obs.qpos.tolist()
        joints.velocity = obs.qvel.tolist()
        self._joint_pub.publish(joints)

    def _publish_status(self) -> None:
        self._status_pub.publish(String(data=self._robot.status.to_json()))

    def _start_episode(self, seed: int | None = None) -> None:
        with self._cond:
            if self.lockstep and self._robot.status is not None:
                self._now_ns += TICK_NS  # a fresh stamp for the new episode's first observation
            now = self._clock_ns()
            self._robot.reset(now, seed)
        self._publish_observation(now)
        self._publish_status()

    def _wait_for_tick(self, next_wall: float) -> tuple[bool, float]:
        """Block until the next step may run; False when interrupted (stop or reset)."""
        with self._cond:
            if self.lockstep:
                deadline = time.monotonic() + self.config.lockstep_timeout_s
                while not (self._robot.follower.covers(self._now_ns) or self._stopping
                           or self._reset_request is not None):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._robot.status.lockstep_timeouts += 1
                        self.get_logger().warning(
                            f"lockstep: no command for {self.config.lockstep_timeout_s} s: "
                            "holding the last target for a step", throttle_duration_sec=10.0)
                        break
                    self._cond.wait(remaining)
                return not (self._stopping or self._reset_request is not None), next_wall
            next_wall += CONTROL_PERIOD_S
            delay = next_wall - time.monotonic()
            if delay > 0:
                self._cond.wait_for(
                    lambda: self._stopping or self._reset_request is not None, delay)
            elif -delay > _MAX_CATCH_UP_TICKS * CONTROL_PERIOD_S:
                self._late_ticks += int(-delay / CONTROL_PERIOD_S)
                next_wall = time.monotonic()
                self.get_logger().warning(
                    f"realtime: simulation cannot keep 50 Hz ({self._late_ticks} ticks dropped "
                    "so far); use mode:=lockstep on a busy machine", throttle_duration_sec=10.0)
            return not (self._stopping or self._reset_request is not None), next_wall

    def _step(self) -> None:
        with self._cond:
            now = self._clock_ns()
            target = self._robot.follower.sample(now)
        if self.lockstep:
            stamp = now + TICK_NS
            self._robot.tick(now, stamp, target=target)
            with self._cond:
                self._now_ns = stamp
        else:
            self._robot.tick(now, None, target=target)
            stamp = self.get_clock().now().nanoseconds
            self._robot.status.stamp_s = stamp * 1e-9
        self._publish_observation(stamp)
        status = self._robot.status
        if status.done or status.step % self.config.status_every_steps == 0:
            self._publish_status()
        if status.done:
            self.get_logger().info(
                f"episode {status.episode} (seed {status.seed}) done after {status.step} steps: "
                f"success={status.success} max_reward={status.max_reward}")

    def _run(self) -> None:
        try:
            self._robot = SimRobot(self.sim_config, self.config.seed,
                                   success_extra_steps=self.config.success_extra_steps,
                                   interpolate=self.config.interpolate)
            self._start_episode()
            self.get_logger().info(
                f"sim_robot ready: task={self.sim_config.task} mode={self.config.mode} "
                f"seed={self._robot.status.seed} image={self.sim_config.image_size}px")
            next_wall = time.monotonic()
            while not self._stopping:
                with self._cond:
                    reset, self._reset_request = self._reset_request, None
                if reset is not None:
                    self._start_episode()
                    reset.status_json = self._robot.status.to_json()
                    reset.finished.set()
                    next_wall = time.monotonic()
                    continue
                if self._robot.done:
                    if self.config.auto_reset:
                        self._start_episode()
                        next_wall = time.monotonic()
                    else:
                        with self._cond:
                            self._cond.wait_for(lambda: self._stopping
                                                or self._reset_request is not None
                                                or self.config.auto_reset, 1.0)
                    continue
                proceed, next_wall = self._wait_for_tick(next_wall)
                if proceed:
                    self._step()
        except Exception as exc:  # noqa: BLE001 - a dead physics thread must end the node
            if self._stopping or not rclpy.ok():
                return
            self.get_logger().fatal(f"simulation failed: {type(exc).__name__}: {exc}")
            self.exit_code = 1
            rclpy.try_shutdown()
        finally:
            if self._robot is not None:
                self._robot.close()


def main(args: list[str] | None = None) -> int:
    """Run the ``sim_robot`` node until SIGINT; returns the process exit code."""
    stop_with_parent()
    rclpy.init(args=args)
    executor = SingleThreadedExecutor()
    node = None
    exit_code = 0
    try:
        node = SimRobotNode()
        executor.add_node(node)
        node.start()
        spin_until_shutdown(executor)
    except (ConfigError, InvalidParameterValueException) as exc:
        print(f"sim_robot: invalid configuration: {exc}", file=sys.stderr)
        exit_code = 2
    finally:
        if node is not None:
            node.stop()
            exit_code = exit_code or node.exit_code
        rclpy.try_shutdown()
        executor.shutdown()
        if node is not None:
            node.destroy_node()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
