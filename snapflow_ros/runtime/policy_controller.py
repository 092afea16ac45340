# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node's control logic without ROS: inputs in, timed commands out.

:class:`PolicyController` owns the :class:`ObservationBuffer` (inputs), a runner (by default a
:class:`~snapflow_ros.runtime.policy_runner.PolicyRunner`), the :class:`ActionChunkScheduler`
(``n_act``, prefetch, blending), the :class:`SafetyGuard` and the latency tracker. Its inference
loop (:meth:`PolicyController.step`, run in a thread by :meth:`PolicyController.start`) waits
until a chunk is due, holds once when inputs go stale, waits for a fresh camera frame, infers,
guards and schedules the chunk, and emits plain data: :class:`TrajectoryCommand` (points to
publish), :class:`HoldCommand` (a position and why) and :class:`LatencyRecord`.

Clocks are injected: ``clock`` is the schedule's (monotonic, or the simulated clock under
``simulated_time``), ``wall_clock`` measures real waits (the resend and the fresh-frame
deadline), ``stamp_clock`` stamps commands (ns, the ROS clock), and ``wait(timeout, event)``
sleeps. With fakes of all four the controller runs step by step in a test.

Under simulated time a lockstep simulator advances only on commands: a chunk due at step k uses
every input of step k (by stamp, whatever their order) and is for that stamp; a trajectory it
missed (sent before its subscription matched) would stall both sides, so after
``LOCKSTEP_RESEND_S`` of wall time on a clock still at its start it is emitted again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, component, param
from snapflow_ros.runtime.chunk_scheduler import ActionChunkScheduler, EpisodeTime, SchedulerConfig
from snapflow_ros.runtime.image_decoding import InputRejected
from snapflow_ros.runtime.latency_tracker import LatencyTracker
from snapflow_ros.runtime.observation_buffer import (
    JOINT_STATE,
    ObservationBuffer,
    ObservationConfig,
)
from snapflow_ros.runtime.policy_runner import PolicyRunner, RunnerConfig
from snapflow_ros.runtime.safety_guard import SafetyGuard, SafetyGuardConfig

LATENCY_LABELS = ("preprocess", "model", "postprocess", "guard", "input_to_publish")
# Under simulated time, wall seconds of a still clock before the last trajectory is sent again.
LOCKSTEP_RESEND_S = 1.0
LOCKSTEP_INPUT_WAIT_S = 10.0  # simulated time: wall s to wait for the inputs of a due step
# Under simulated time the clock may run faster or slower than the wall: poll it this often (s).
SIMULATED_POLL_S = 0.002
# Wall seconds between two log messages of one kind.
LOG_THROTTLE_S = 2.0
COUNTERS = ("chunks_produced", "inference_errors", "guard_refusals", "trajectories_published",
            "commands_published", "trajectories_resent")


@dataclasses.dataclass(frozen=True)
class PolicyControllerConfig:
    """The controller's component configs, the fresh-frame wait and the latency window."""

    runner: RunnerConfig = component(RunnerConfig, "policy runner")
    observation: ObservationConfig = component(ObservationConfig, "observation inputs")
    scheduler: SchedulerConfig = component(SchedulerConfig, "chunk schedule")
    guard: SafetyGuardConfig = component(SafetyGuardConfig, "safety guard")
    wait_for_fresh_image: bool = param(
        True, "When a chunk is due, wait (at most max_input_age_s) for a camera frame received "
        "after that moment (the prefetch absorbs it); under use_sim_time for every input of "
        "the step due, so that lockstep episodes repeat bit for bit.", runtime=True)
    latency_window: int = param(500, "Inferences kept for the latency percentiles.",
                                low=1, high=1000000)

    def __post_init__(self) -> None:
        check_config(self)


def resolve_for_policy(config: PolicyControllerConfig, joint_names: Sequence[str],
                       action_names: Sequence[str], camera_keys: Sequence[str],
                       chunk_size: int,
                       environment_state_names: Sequence[str] = ()) -> PolicyControllerConfig:
    """Check ``config`` against a loaded checkpoint and fill in its joints and chunk size.

    Raises :class:`ConfigError` naming every mismatch (cameras, joints, limited joints, the
    number of per-joint rate limits, ``n_act`` beyond the chunk).
    """
    observation = config.observation
    problems = []
    if set(observation.camera_keys) != set(camera_keys):
        problems.append(
            f"camera_keys {list(observation.camera_keys)} do not match the checkpoint's "
            f"{list(camera_keys)}"
        )
    if observation.joint_names and set(observation.joint_names) != set(joint_names):
        missing = [n for n in joint_names if n not in observation.joint_names]
        extra = [n for n in observation.joint_names if n not in joint_names]
        problems.append(f"joint_names differ from the checkpoint's (missing {missing}, "
                        f"unexpected {extra})")
    if (observation.environment_state_names
            and tuple(observation.environment_state_names) != tuple(environment_state_names)):
        problems.append(f"environment_state_names {list(observation.environment_state_names)} "
                        f"differ from the checkpoint's {list(environment_state_names)}")
    problems += config.guard.joint_problems(tuple(action_names))
    try:
        scheduler = dataclasses.replace(config.scheduler, chunk_size=int(chunk_size))
    except ConfigError as exc:  # n_act beyond the checkpoint's chunk
        problems.append(f"{exc} of the checkpoint")
    if problems:
        raise ConfigError("configuration does not fit the checkpoint: " + "; ".join(problems))
    # The model defines the order of its state vector; the config only names the joints.
    observation = dataclasses.replace(observation, joint_names=tuple(joint_names),
                                      environment_state_names=tuple(environment_state_names))
    return dataclasses.replace(config, observation=observation, scheduler=scheduler)


def forget_policy(config: PolicyControllerConfig,
                  unresolved: PolicyControllerConfig) -> PolicyControllerConfig:
    """Undo :func:`resolve_for_policy`: ``unresolved``'s joint names, no chunk size.

    Every other field of ``config`` (runtime changes made since) is kept.
    """
    return dataclasses.replace(
        config, scheduler=dataclasses.replace(config.scheduler, chunk_size=0),
        observation=dataclasses.replace(
            config.observation, joint_names=unresolved.observation.joint_names,
            environment_state_names=unresolved.observation.environment_state_names))


class Runner(Protocol):
    """What the controller needs of a runner (:class:`PolicyRunner` has it)."""

    action_names: tuple[str, ...]

    def infer(self, observation: Any, num_steps: int, mode: str) -> Any:
        """A result with ``actions`` ``(H, A)`` and ``timings_ms`` ``{stage: ms}``."""

    def warmup(self, iterations: int, num_steps: int, mode: str, task: str) -> Any:
        """Run a few inferences before the first real one."""

    def close(self) -> None:
        """Free the model."""


@dataclasses.dataclass(frozen=True)
class TrajectoryCommand:
    """One trajectory to publish: ``points`` ``[(time_from_start (s), positions (A,))]``.

    ``stamp_ns``: its start on the stamp clock (ns); ``resent``: a copy of the last one, sent
    again because a simulated clock stood still.
    """

    points: tuple[tuple[float, np.ndarray], ...]
    stamp_ns: int
    resent: bool = False


@dataclasses.dataclass(frozen=True)
class HoldCommand:
    """Hold ``position`` ``(A,)`` (the command in force, never a new one), for ``reason``."""

    position: np.ndarray
    reason: str
    stamp_ns: int
    time_from_start_s: float

    @property
    def points(self) -> tuple[tuple[float, np.ndarray], ...]:
        """The hold as one trajectory point, reached after one control tick."""
        return ((self.time_from_start_s, self.position),)


@dataclasses.dataclass(frozen=True)
class LatencyRecord:
    """Stage durations (ms) of one inference, keyed by :data:`LATENCY_LABELS`."""

    timings_ms: dict[str, float]


Output = TrajectoryCommand | HoldCommand | LatencyRecord


def _wait_on_event(timeout: float, event: threading.Event) -> None:
    event.wait(timeout)


class PolicyController:
    """Inputs in, timed commands out, for one loaded runner (see the module doc).

    ``config`` must be resolved for the runner's checkpoint
    (:func:`snapflow_ros.runtime.config.resolve_for_policy`). ``task_from_topic``: the task
    comes from :meth:`set_task` only, not from ``config.observation.task`` changes. ``logger``
    (``info`` / ``warning`` / ``error`` methods; a node's or :mod:`logging`'s) receives
    throttled messages.
    """

    def __init__(self, config: PolicyControllerConfig, runner: Runner, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.monotonic,
                 stamp_clock: Callable[[], int] = time.time_ns,
                 wait: Callable[[float, threading.Event], Any] = _wait_on_event,
                 simulated_time: bool = False, task_from_topic: bool = False,
                 logger: Any = None) -> None:
        self._config = config
        self._runner = runner
        self.action_names = tuple(runner.action_names)
        self.device = getattr(runner, "device", None)
        self._clock, self._wall, self._stamp_clock = clock, wall_clock, stamp_clock
        self._wait = wait
        self.simulated_time = simulated_time
        self._task_from_topic = task_from_topic
        self._logger = logger if logger is not None else logging.getLogger(__name__)
        self._buffer = ObservationBuffer.from_config(
            config.observation, max_input_age_s=config.guard.max_input_age_s,
            command_joint_names=self.action_names)
        self._scheduler = ActionChunkScheduler(config.scheduler)
        self._guard = SafetyGuard(config.guard, self.action_names,
                                  config.scheduler.control_period_s)
        self._latency = LatencyTracker(config.latency_window)
        self._stop = threading.Event()
        self._image_arrived = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._logged: dict[str, float] = {}
        self.last_problem = ""
        self.active = False
        self._reset()

    @classmethod
    def load(cls, config: PolicyControllerConfig, **kwargs: Any) -> PolicyController:
        """Load ``config.runner``'s checkpoint, fit ``config`` to it and warm it up.

        ``kwargs`` go to the constructor (clocks, ``simulated_time``, ``log``...). Raises
        :class:`ConfigError` (or the loader's error) with nothing left loaded.
        """
        runner = PolicyRunner.from_config(config.runner)
        try:
            robot = runner.robot
            config = resolve_for_policy(config, robot.joint_names, robot.action_names,
                                        robot.camera_keys, runner.chunk_size,
                                        robot.environment_state_names)
            controller = cls(config, runner, **kwargs)
            controller.warmup(iterations=2)
        except BaseException:
            runner.close()
            raise
        return controller

    # ------------------------------------------------------------------------- settings

    @property
    def config(self) -> PolicyControllerConfig:
        """The settings in force (chunk settings apply from the next chunk)."""
        return self._config

    def update_config(self, config: PolicyControllerConfig) -> None:
        """Take the runtime settings of ``config`` (the others stay as constructed).

        ``n_act``, blending and prefetch apply from the next chunk, ``num_steps`` and
        ``sampler_mode`` from the next inference, the rest at once.
        """
        self._config = config
        self._scheduler.update_config(config.scheduler)
        self._guard.update_config(config.guard)
        self._buffer.set_max_input_age(config.guard.max_input_age_s)
        if not self._task_from_topic:
            self._buffer.set_task(config.observation.task)

    def warmup(self, iterations: int = 2) -> None:
        """Run the runner ``iterations`` times on a blank observation (kernels, compilation)."""
        runner = self._config.runner
        self._runner.warmup(iterations=iterations, num_steps=runner.num_steps,
                            mode=runner.sampler_mode, task=self._config.observation.task)

    # ------------------------------------------------------------------------ lifecycle

    def _reset(self) -> None:
        self._last_image_time: float | None = None
        self._last_trajectory: TrajectoryCommand | None = None
        self._last_trajectory_time, self._last_sent_wall = math.nan, 0.0  # its start, wall sent
        self._was_stale, self._episode_time = False, EpisodeTime()

    def activate(self) -> None:
        """Begin acting from empty inputs and plan (no thread: call :meth:`step` yourself)."""
        self.stop()
        self._scheduler.reset()
        self._guard.reset()
        # Inputs from before a stop are stale, and a replayed recording restarts its stamps.
        self._buffer.clear()
        self._reset()
        self._stop.clear()
        self.active = True

    def start(self, emit: Callable[[Output], None]) -> None:
        """:meth:`activate`, then run :meth:`step` in a thread until :meth:`stop`."""
        self.activate()
        self._thread = threading.Thread(target=self._run, args=(emit,),
                                        name="snapflow_inference", daemon=True)
        self._thread.start()

    def _run(self, emit: Callable[[Output], None]) -> None:
        while not self._stop.is_set():
            self.step(emit)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop acting: inputs are ignored and the inference thread ends (waits for it)."""
        self.active = False
        self._stop.set()
        self._image_arrived.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def close(self) -> None:
        """Stop and free the runner (GPU memory too)."""
        self.stop()
        self._runner.close()

    # --------------------------------------------------------------------------- inputs

    def _stamp_check_clock(self) -> float | None:
        # A simulated clock only moves when a /clock message arrives, so it trails the stamps of
        # the simulator's own observations: a "future" stamp there is not a fault.
        return None if self.simulated_time else self._stamp_clock() * 1e-9

    def _accept(self, what: str, add: Callable[..., None], *args: Any,
                stamp: float | None) -> bool:
        if not self.active:
            return False
        try:
            add(*args, receive_time=self._clock(), stamp=stamp,
                clock_now=self._stamp_check_clock())
        except InputRejected as exc:
            self._problem("warning", f"rejected {what}", f"{what} rejected: {exc}")
            return False
        return True

    def add_joint_state(self, names: list[str], positions: Any,
                        stamp: float | None = None) -> bool:
        """A JointState's names and positions, header stamp (s); False if ignored or rejected."""
        return self._accept("joint state", self._buffer.add_joint_state, names, positions,
                            stamp=stamp)

    def add_raw_image(self, key: str, encoding: str, height: int, width: int, step: int,
                      data: Any, stamp: float | None = None) -> bool:
        """The fields of a ``sensor_msgs/Image`` of camera ``key``; False if ignored or rejected."""
        accepted = self._accept(f"camera {key}", self._buffer.add_raw_image, key, encoding,
                                height, width, step, data, stamp=stamp)
        if accepted:
            self._image_arrived.set()
        return accepted

    def add_compressed_image(self, key: str, format: str, data: Any,
                             stamp: float | None = None) -> bool:
        """A ``sensor_msgs/CompressedImage`` (jpeg / png) of camera ``key``."""
        accepted = self._accept(f"camera {key}", self._buffer.add_compressed_image, key, format,
                                data, stamp=stamp)
        if accepted:
            self._image_arrived.set()
        return accepted

    def add_environment_state(self, source: str, msgtype: str, message: Any,
                              stamp: float | None = None) -> bool:
        """An environment-state message (pose or array) of ``source``; False if not taken."""
        return self._accept(f"environment state {source}", self._buffer.add_environment_state,
                            source, msgtype, message, stamp=stamp)

    def set_task(self, task: str) -> None:
        """Replace the task instruction of the following observations."""
        self._buffer.set_task(task)

    # -------------------------------------------------------------------------- the loop

    def step(self, emit: Callable[[Output], None]) -> None:
        """One pass of the inference loop; ``emit`` receives each output as it is made.

        Sleeps (through ``wait``) until a chunk is due, or a tick after a stale check, missing
        inputs or a failure; otherwise infers once and emits the trajectory and latency record.
        """
        period = self._config.scheduler.control_period_s
        now = self._clock()
        due_in = self._scheduler.time_until_inference(self._episode_time(now))
        if due_in > 0:
            if self.simulated_time:
                self._resend_if_clock_stalled(self._episode_time(now), emit)
            self._wait(min(due_in, SIMULATED_POLL_S if self.simulated_time else period),
                       self._stop)
            return
        if self._check_stale(now, emit):
            self._wait(period, self._stop)
            return
        if self._config.wait_for_fresh_image:
            self._wait_for_fresh_inputs(due=now)
            now = self._clock()
        observation, reason = self._buffer.snapshot_with_reason(now)
        if observation is None:
            self.last_problem = reason
            self._log("warning", "waiting", f"waiting for inputs: {reason}")
            self._wait(period, self._stop)
            return
        self._last_image_time = self._newest_image_time(now)
        self._infer(observation, now, emit)

    def _resend_if_clock_stalled(self, now: float, emit: Callable[[Output], None]) -> None:
        # Only while the clock is still at its start: a robot that stepped since received it.
        if (now < self._last_trajectory_time + self._scheduler.period / 2
                and self._wall() - self._last_sent_wall > LOCKSTEP_RESEND_S):
            emit(dataclasses.replace(self._last_trajectory, resent=True))
            self._last_sent_wall = self._wall()
            self._count("trajectories_resent")

    def _newest_image_time(self, now: float) -> float | None:
        """Receive time (schedule clock) of the newest camera frame in the buffer."""
        ages = [age for name, age in self._buffer.input_ages(now).items()
                if name != JOINT_STATE and age is not None]
        return now - min(ages) if ages else None

    def _wait_for_fresh_inputs(self, due: float) -> None:
        """Wait for a frame received after ``due`` (simulated time: every input of that step)."""
        simulated, half = self.simulated_time, 0.5 * self._config.scheduler.control_period_s
        deadline = self._wall() + (LOCKSTEP_INPUT_WAIT_S if simulated
                                   else self._config.guard.max_input_age_s)
        while not self._stop.is_set() and self._wall() < deadline:
            if simulated:
                observation, _ = self._buffer.snapshot_with_reason(now := self._clock())
                stamps = [s for s in (observation.stamps.values() if observation else ()) if s]
                if observation and all(due - half <= stamp < now + half for stamp in stamps):
                    return
            else:
                newest = self._newest_image_time(self._clock())
                if newest is not None and (self._last_image_time is None or newest > due):
                    return
            self._wait(min(0.005, max(0.0, deadline - self._wall())), self._image_arrived)
            self._image_arrived.clear()
        if simulated and not self._stop.is_set():
            self._problem("warning", "step_inputs", f"inputs of step {due:.3f} s late: using older")

    def _check_stale(self, now: float, emit: Callable[[Output], None]) -> bool:
        """Update the watchdog; on going stale, drop the plan and hold once."""
        stale = self._guard.update_inputs(self._buffer.input_ages(now))
        if stale and not self._was_stale:
            self._scheduler.clear_plan()
            self.last_problem = f"inputs stale: {self._guard.stale_reason}"
            self._problem("warning", "stale", f"{self.last_problem}; holding position")
            hold = self.hold("stale inputs")
            if hold is not None:
                emit(hold)
        elif not stale and self._was_stale:
            self._log("info", "fresh", "inputs fresh again: resuming")
        self._was_stale = stale
        return stale

    def _infer(self, observation: Any, snapshot_time: float,
               emit: Callable[[Output], None]) -> None:
        config = self._config
        period = config.scheduler.control_period_s
        try:
            result = self._runner.infer(observation, config.runner.num_steps,
                                        config.runner.sampler_mode)
        except Exception as exc:  # noqa: BLE001 - a failed inference must never stop the loop
            self._count("inference_errors")
            self._problem("error", "inference", f"inference failed: {exc}")
            self._wait(period, self._stop)
            return
        guard_start = time.perf_counter()
        checked = self._guard.filter_chunk(result.actions)
        if checked.actions is None:
            self._count("guard_refusals")
            self._problem("warning", "refused", f"chunk refused: {checked.reason}")
            hold = self.hold(checked.reason)
            if hold is not None:
                emit(hold)
            self._wait(period, self._stop)
            return
        # Simulated time: the step's stamp (not its receive time), as EpisodeTime counts it.
        t_obs = (self._episode_time.start_once(observation.stamps.get(JOINT_STATE) or
                 observation.time) if self.simulated_time else observation.time)
        t_ready = self._episode_time(self._clock())
        self._scheduler.add_chunk(checked.actions, t_obs=t_obs, t_ready=t_ready)
        self._count("chunks_produced")
        if config.scheduler.output_mode == "trajectory":
            self._emit_trajectory(t_ready, observation, emit)
        timings = dict(result.timings_ms)
        timings["guard"] = (time.perf_counter() - guard_start) * 1e3
        # From the arrival of the newest camera frame used to the command's emission.
        camera_ages = [age for name, age in observation.ages.items() if name != JOINT_STATE]
        arrival = snapshot_time - min(camera_ages) if camera_ages else observation.time
        timings["input_to_publish"] = (self._clock() - arrival) * 1e3
        self._latency.record_many(timings)
        emit(LatencyRecord({label: float(timings.get(label, 0.0)) for label in LATENCY_LABELS}))

    def _emit_trajectory(self, now: float, observation: Any,
                         emit: Callable[[Output], None]) -> None:
        points = self._scheduler.take_trajectory(now)
        if not points:
            return
        filtered = self._guard.filter_trajectory(points, now,
                                                 measured=observation.measured_position)
        if filtered.actions is None:
            self._problem("warning", "trajectory", f"trajectory refused: {filtered.reason}")
            return
        if not filtered.publish:
            return  # dry run: computed and reported only
        command = TrajectoryCommand(
            tuple((t, a) for (t, _), a in zip(points, filtered.actions)), self._stamp_clock())
        self._last_trajectory, self._last_trajectory_time = command, now
        self._last_sent_wall = self._wall()
        emit(command)
        self._count("trajectories_published")
        self._count("commands_published", len(command.points))

    # ---------------------------------------------------------------- synchronous outputs

    def control_tick(self) -> TrajectoryCommand | None:
        """Stream mode, once per control tick: the guarded point to publish now, or None."""
        if not self.active or (self.simulated_time and self._episode_time.epoch_ns is None):
            return None
        command = self._scheduler.next_command(self._episode_time(self._clock()))
        if command is None:
            return None
        filtered = self._guard.filter_command(command[1],
                                              measured=self._buffer.measured_position())
        if filtered.actions is None or not filtered.publish:
            return None
        self._count("commands_published")
        return TrajectoryCommand(((self._config.scheduler.control_period_s, filtered.actions),),
                                 self._stamp_clock())

    def hold(self, reason: str) -> HoldCommand | None:
        """Hold the position in force now, or None (dry run, or nothing commanded yet).

        Nothing before this controller commanded anything: the robot is then under whatever
        controlled it before, and a hold at the measured position would fight it.
        """
        if self._config.guard.dry_run:
            return None
        position = self._guard.hold_position(None, now=self._episode_time(self._clock()))
        if position is None or not np.all(np.isfinite(position)):
            return None
        self._log("info", "hold", f"holding position ({reason})")
        return HoldCommand(position, reason, self._stamp_clock(),
                           self._config.scheduler.control_period_s)

    # ----------------------------------------------------------------------- reporting

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._counters[name] += amount

    def _log(self, level: str, kind: str, message: str) -> None:
        wall = self._wall()
        if wall - self._logged.get(kind, -math.inf) < LOG_THROTTLE_S:
            return
        self._logged[kind] = wall
        # One call site per level: an rclpy logger refuses two severities from one line.
        if level == "error":
            self._logger.error(message)
        elif level == "warning":
            self._logger.warning(message)
        else:
            self._logger.info(message)

    def _problem(self, level: str, kind: str, message: str) -> None:
        self.last_problem = message
        self._log(level, kind, message)

    def health(self, state: str) -> tuple[bool, str]:
        """``(healthy, message)`` for the status report of a node in lifecycle ``state``.

        Unhealthy while inputs are stale or after an inference failed.
        """
        if self._guard.stale:
            return False, self.last_problem or "stale"
        with self._stats_lock:
            failed = self._counters["inference_errors"] > 0
        if failed:
            return False, self.last_problem
        return True, f"{state}; {self.last_problem}".rstrip("; ")

    def diagnostics(self) -> dict[str, Any]:
        """Counters, input ages / rates / rejections, schedule, guard, latency, as plain values."""
        now = self._clock()
        with self._stats_lock:
            values: dict[str, Any] = dict(self._counters)
        values["input_age_s"] = {k: (None if v is None else round(v, 4))
                                 for k, v in self._buffer.input_ages(now).items()}
        values["input_rate_hz"] = {k: round(v, 2)
                                   for k, v in self._buffer.input_rates(now).items()}
        values["inputs_rejected"] = self._buffer.rejection_counts()
        values["inputs_accepted"] = self._buffer.accepted_counts()
        values["schedule"] = self._scheduler.stats()
        values["guard"] = {k: v for k, v in self._guard.counts().items() if v}
        values["stale"] = self._guard.stale
        values["latency_ms"] = {stage: {k: round(v, 3) for k, v in stats.items()}
                                for stage, stats in self._latency.summary().items()}
        values["n_act"] = self._config.scheduler.n_act
        values["num_steps"] = self._config.runner.num_steps
        values["last_problem"] = self.last_problem
        return values
