# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The last filter before a command leaves the node: nothing unsafe gets through.

:class:`SafetyGuard` refuses non-finite chunks and commands (the robot holds instead), clamps to
the configured position limits, limits the change per control tick, checks the first command
against the measured position (refuse, or ramp in over N ticks), holds while inputs are stale and
re-arms the first-command check when they return, and in ``dry_run`` computes everything but
marks nothing for publishing. Every intervention is counted by kind.

Invariants (tested for arbitrary inputs): an accepted command is finite, within the limits, and
differs from the previous accepted command (the measured position for a first command) by at
most ``max_delta_per_tick`` per joint per tick.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param

FIRST_COMMAND_MODES = ("refuse", "ramp")

INTERVENTIONS = (
    "shape_mismatch",  # an action of the wrong size
    "non_finite",  # NaN / inf in a chunk or command: refused, hold instead
    "stale",  # inputs too old: refused, hold
    "clamped",  # a value was clamped to its position limits
    "rate_limited",  # a change exceeded max_delta_per_tick and was cut
    "no_measurement",  # a first command without a valid measured position: refused
    "measured_outside_limits",  # the robot is outside the limits: a first command is refused
    "first_command_refused",  # a first command too far from the measured position
    "first_command_ramped",  # a first command too far away: ramped in instead
    "bad_times",  # trajectory times not positive and increasing: refused
    "dry_run",  # computed, not to be published
)


@dataclasses.dataclass(frozen=True)
class SafetyGuardConfig:
    """Limits, rate limits, the first-command check, dry run and the stale-input age."""

    dry_run: bool = param(False, "Compute and report commands but publish none.", runtime=True)
    max_input_age_s: float = param(
        0.5, "Hold when a camera or the joint state is older than this (s).",
        low=0.001, high=60.0, runtime=True,
    )
    limit_joint_names: tuple[str, ...] = param(
        (), "Joints with position limits; joints not listed are not clamped."
    )
    lower_limits: tuple[float, ...] = param(
        (), "Lower position limit of each joint in limit_joint_names (rad or m)."
    )
    upper_limits: tuple[float, ...] = param(
        (), "Upper position limit of each joint in limit_joint_names (rad or m)."
    )
    max_delta_per_tick: tuple[float, ...] = param(
        (0.05,), "Largest command change per control tick: one value, or one per commanded joint.",
        low=1e-9,
    )
    first_command_mode: str = param(
        "ramp", "A first command far from the measured position: refuse it, or ramp to it.",
        choices=FIRST_COMMAND_MODES,
    )
    first_command_max_distance: float = param(
        0.2, "Largest per-joint distance of a first command from the measured position.",
        low=0.0, high=1000.0,
    )
    first_command_ramp_ticks: int = param(
        50, "Control ticks over which a far first command is ramped in.", low=1, high=100000
    )

    def __post_init__(self) -> None:
        check_config(self)
        if len(set(self.limit_joint_names)) != len(self.limit_joint_names):
            raise ConfigError(f"limit_joint_names has duplicates: {list(self.limit_joint_names)}")
        n_limits = len(self.limit_joint_names)
        if len(self.lower_limits) != n_limits or len(self.upper_limits) != n_limits:
            raise ConfigError(
                f"limit_joint_names ({n_limits}), lower_limits ({len(self.lower_limits)}) and "
                f"upper_limits ({len(self.upper_limits)}) must have the same length"
            )
        for name, low, high in zip(self.limit_joint_names, self.lower_limits, self.upper_limits):
            if low > high:
                raise ConfigError(f"joint {name}: lower limit {low} > upper limit {high}")
        if not self.max_delta_per_tick:
            raise ConfigError("max_delta_per_tick: give one value, or one per joint")

    def joint_problems(self, joint_names: Sequence[str]) -> list[str]:
        """What does not fit the commanded ``joint_names`` (unknown limited joints, rate limits)."""
        problems = []
        unknown = [n for n in self.limit_joint_names if n not in joint_names]
        if unknown:
            problems.append(f"limit_joint_names {unknown} are not commanded joints "
                            f"{list(joint_names)}")
        if len(self.max_delta_per_tick) not in (1, len(joint_names)):
            problems.append(f"max_delta_per_tick has {len(self.max_delta_per_tick)} values for "
                            f"{len(joint_names)} commanded joints")
        return problems


@dataclasses.dataclass(frozen=True)
class GuardResult:
    """The filtered actions (None when refused) and this call's interventions.

    ``publish`` is False when refused or in dry run; ``reason`` says why it was refused.
    """

    actions: np.ndarray | None
    interventions: dict[str, int]
    publish: bool
    reason: str = ""


class SafetyGuard:
    """Limits, rate limiting, NaN refusal, first-command check and stale-input hold.

    ``joint_names``: the commanded joints, in action order; ``control_period_s``: one control
    tick (s), the unit of the rate limit. Thread-safe; keep one guard per command stream, since
    it remembers the last command.
    """

    def __init__(self, config: SafetyGuardConfig, joint_names: Sequence[str],
                 control_period_s: float) -> None:
        self.joint_names = tuple(joint_names)
        if not self.joint_names:
            raise ConfigError("SafetyGuard needs the commanded joint names")
        problems = config.joint_problems(self.joint_names)
        if problems:
            raise ConfigError("; ".join(problems))
        dims = len(self.joint_names)
        self.period = float(control_period_s)
        self.lower = np.full(dims, -np.inf)
        self.upper = np.full(dims, np.inf)
        for name, low, high in zip(config.limit_joint_names, config.lower_limits,
                                   config.upper_limits):
            index = self.joint_names.index(name)
            self.lower[index], self.upper[index] = low, high
        deltas = np.asarray(config.max_delta_per_tick, dtype=np.float64)
        self.max_delta = np.broadcast_to(deltas, (dims,)).copy()
        self.first_command_mode = config.first_command_mode
        self.first_command_max_distance = config.first_command_max_distance
        self.ramp_ticks = config.first_command_ramp_ticks
        self.dry_run = config.dry_run
        self.max_input_age_s = config.max_input_age_s
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self.stale = False
        self.stale_reason = ""
        self._rearm()

    def _rearm(self) -> None:
        self._previous: np.ndarray | None = None  # last accepted command (A,)
        self._trajectory: tuple[np.ndarray, np.ndarray] | None = None  # (abs times, (N, A))
        self._ramp_start: np.ndarray | None = None
        self._ramp_tick = 0
        self._ramp_time: float | None = None

    def update_config(self, config: SafetyGuardConfig) -> None:
        """Apply the runtime-changeable settings (dry_run, max_input_age_s).

        Leaving dry run re-arms the first-command check: the dry commands never moved the robot.
        """
        with self._lock:
            if self.dry_run and not config.dry_run:
                self._rearm()
            self.dry_run = config.dry_run
            self.max_input_age_s = config.max_input_age_s

    def reset(self) -> None:
        """Forget the last command: the next one is a first command again (on activation)."""
        with self._lock:
            self._rearm()

    # ---------------------------------------------------------------------------- inputs

    def update_inputs(self, ages: Mapping[str, float | None]) -> bool:
        """Update the stale-input watchdog from input ages (s, None: never); returns stale.

        When inputs come back after being stale, the next command is a first command again.
        """
        too_old = {name: age for name, age in ages.items()
                   if age is None or not age <= self.max_input_age_s}
        with self._lock:
            was_stale = self.stale
            self.stale = bool(too_old) or not ages
            if self.stale:
                self.stale_reason = ("no inputs" if not ages else ", ".join(
                    f"{name} {'missing' if age is None else f'{age:.3f} s old'}"
                    for name, age in too_old.items()))
            else:
                self.stale_reason = ""
                if was_stale:
                    self._rearm()
            return self.stale

    # ---------------------------------------------------------------------------- helpers

    def _refuse(self, counts: dict[str, int], kind: str, reason: str) -> GuardResult:
        counts[kind] = counts.get(kind, 0) + 1
        self._counts.update(counts)
        return GuardResult(None, counts, False, reason)

    def _accept(self, actions: np.ndarray, counts: dict[str, int]) -> GuardResult:
        if self.dry_run:
            counts["dry_run"] = counts.get("dry_run", 0) + 1
        self._counts.update(counts)
        return GuardResult(actions, counts, not self.dry_run)

    def _clamp(self, actions: np.ndarray, counts: dict[str, int]) -> np.ndarray:
        clamped = np.clip(actions, self.lower, self.upper)
        if np.any(clamped != actions):
            counts["clamped"] = 1
        return clamped

    def _limit(self, target: np.ndarray, previous: np.ndarray, ticks: float,
               counts: dict[str, int]) -> np.ndarray:
        step = self.max_delta * ticks
        with np.errstate(over="ignore", invalid="ignore"):
            change = np.clip(target - previous, -step, step)
        if np.any(change != target - previous):
            counts["rate_limited"] = 1
        # Clamping again costs nothing and holds even for a previous command outside limits.
        return np.clip(previous + change, self.lower, self.upper)

    def _first_command(self, target: np.ndarray, measured: object, counts: dict[str, int],
                       ticks: float = 1.0) -> tuple[np.ndarray | None, str, str]:
        """Check a first command, ``ticks`` periods ahead, against the measured position.

        Returns (start position, refusal kind, reason). A robot outside its limits by more than
        it may move until the command is refused: reaching the limits would break the rate limit.
        """
        position = None if measured is None else np.asarray(measured, dtype=np.float64)
        if (position is None or position.shape != target.shape
                or not np.all(np.isfinite(position))):
            return None, "no_measurement", "a first command needs a finite measured position"
        tolerance = self.max_delta * ticks
        if np.any(position < self.lower - tolerance) or np.any(
                position > self.upper + tolerance):
            outside = [n for n, p, lo, hi in zip(self.joint_names, position, self.lower,
                                                 self.upper) if not lo <= p <= hi]
            return None, "measured_outside_limits", f"robot outside its limits at {outside}"
        distance = float(np.max(np.abs(target - position)))
        if distance > self.first_command_max_distance:
            if self.first_command_mode == "refuse":
                return None, "first_command_refused", (
                    f"first command {distance:.3f} from the measured position "
                    f"(max {self.first_command_max_distance})")
            self._ramp_start, self._ramp_tick, self._ramp_time = position.copy(), 0, None
            counts["first_command_ramped"] = 1
        return position, "", ""

    def _check(self, actions: object, rows: int | None,
               counts: dict[str, int]) -> tuple[np.ndarray | None, str, str]:
        try:
            array = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            return None, "shape_mismatch", "actions are not numbers"
        dims = len(self.joint_names)
        shape_ok = (array.shape == (dims,) if rows is None
                    else array.ndim == 2 and array.shape[1] == dims and array.shape[0] >= rows)
        if not shape_ok:
            return None, "shape_mismatch", f"actions of shape {array.shape} for {dims} joints"
        if self.stale:
            return None, "stale", f"inputs stale: {self.stale_reason}"
        if not np.all(np.isfinite(array)):
            return None, "non_finite", "non-finite values: holding"
        return array, "", ""

    # ----------------------------------------------------------------------------- filters

    def filter_chunk(self, actions: np.ndarray) -> GuardResult:
        """Check a whole chunk ``(H, A)`` before scheduling it.

        Refused (the robot holds) when inputs are stale or any value is non-finite; otherwise
        clamped to the limits. Rate limits apply later, per command or trajectory.
        """
        with self._lock:
            counts: dict[str, int] = {}
            array, kind, reason = self._check(actions, 1, counts)
            if array is None:
                return self._refuse(counts, kind, reason)
            clamped = self._clamp(array, counts)
            self._counts.update(counts)
            return GuardResult(clamped, counts, not self.dry_run)

    def filter_command(self, action: np.ndarray, measured: np.ndarray | None = None,
                       previous: np.ndarray | None = None) -> GuardResult:
        """Filter one stream-mode command ``(A,)`` for the next control tick.

        ``measured``: the robot's position ``(A,)``, needed for a first command; ``previous``
        overrides the last accepted command as the rate-limit origin.
        """
        with self._lock:
            counts: dict[str, int] = {}
            target, kind, reason = self._check(action, None, counts)
            if target is None:
                return self._refuse(counts, kind, reason)
            target = self._clamp(target, counts)
            origin = self._previous if previous is None else np.asarray(previous, np.float64)
            if origin is not None and (origin.shape != target.shape
                                       or not np.all(np.isfinite(origin))):
                return self._refuse(counts, "shape_mismatch",
                                    "previous command is not a finite (A,) array")
            if origin is None:
                origin, kind, reason = self._first_command(target, measured, counts)
                if origin is None:
                    return self._refuse(counts, kind, reason)
            if self._ramp_start is not None:
                self._ramp_tick += 1
                weight = min(1.0, self._ramp_tick / self.ramp_ticks)
                target = self._ramp_start + weight * (target - self._ramp_start)
                if weight >= 1.0:
                    self._ramp_start = None
            output = self._limit(target, origin, 1.0, counts)
            self._previous = output
            return self._accept(output.copy(), counts)

    def filter_trajectory(self, points: Sequence[tuple[float, np.ndarray]], now: float,
                          measured: np.ndarray | None = None) -> GuardResult:
        """Filter a trajectory ``[(time_from_start (s), action (A,))]`` stamped ``now`` (s).

        Each point may move by ``max_delta_per_tick`` per period of time since the previous
        point, starting from the previous trajectory's command at ``now`` (or, for a first
        command, the ``measured`` position). Returns the filtered ``(N, A)`` actions.
        """
        with self._lock:
            counts: dict[str, int] = {}
            if len(points) == 0:
                return GuardResult(np.empty((0, len(self.joint_names))), counts, False,
                                   "empty trajectory")
            times = np.array([p[0] for p in points], dtype=np.float64)
            try:
                raw = np.array([np.asarray(p[1], dtype=np.float64) for p in points])
            except (TypeError, ValueError):
                return self._refuse(counts, "shape_mismatch", "actions of different shapes")
            targets, kind, reason = self._check(raw, 1, counts)
            if targets is None:
                return self._refuse(counts, kind, reason)
            if (not np.all(np.isfinite(times)) or times[0] <= 0
                    or np.any(np.diff(times) <= 0)):
                return self._refuse(counts, "bad_times",
                                    "time_from_start must be positive and increasing")
            targets = self._clamp(targets, counts)
            origin = self._trajectory_position(now)
            if origin is None:
                origin, kind, reason = self._first_command(targets[0], measured, counts,
                                                           times[0] / self.period)
                if origin is None:
                    return self._refuse(counts, kind, reason)
            if self._ramp_start is not None:
                if self._ramp_time is None:
                    self._ramp_time = now
                ramp = self.ramp_ticks * self.period
                weights = np.minimum(1.0, (now + times - self._ramp_time) / ramp)[:, None]
                targets = self._ramp_start + weights * (targets - self._ramp_start)
                if weights[-1, 0] >= 1.0:
                    self._ramp_start = None
            outputs = np.empty_like(targets)
            previous, previous_time = origin, 0.0
            for i, (time, target) in enumerate(zip(times, targets)):
                outputs[i] = previous = self._limit(target, previous,
                                                    (time - previous_time) / self.period, counts)
                previous_time = time
            self._trajectory = (now + times, outputs.copy())
            self._previous = outputs[-1].copy()
            return self._accept(outputs, counts)

    def _trajectory_position(self, now: float) -> np.ndarray | None:
        if self._trajectory is None:
            return None
        times, actions = self._trajectory
        return np.array([np.interp(now, times, actions[:, j]) for j in range(actions.shape[1])])

    # ---------------------------------------------------------------------------- reports

    def hold_position(self, measured: np.ndarray | None = None,
                      now: float | None = None) -> np.ndarray | None:
        """Where to hold ``(A,)``: the command in force at ``now``, the last one, or ``measured``.

        ``now`` applies to trajectory mode. ``measured`` is clamped to the limits if it lies at
        most one tick's change outside them; None when there is nothing to hold, or
        ``measured`` is non-finite or further out (then publish nothing; the controller holds).
        """
        with self._lock:
            if now is not None and self._trajectory is not None:
                return self._trajectory_position(now)
            if self._previous is not None:
                return self._previous.copy()
        if measured is None:
            return None
        position = np.asarray(measured, dtype=np.float64)
        if (position.shape != (len(self.joint_names),) or not np.all(np.isfinite(position))
                or np.any(position < self.lower - self.max_delta)
                or np.any(position > self.upper + self.max_delta)):
            return None
        return np.clip(position, self.lower, self.upper)

    def counts(self) -> dict[str, int]:
        """Interventions by kind since construction (every kind, zeros included)."""
        with self._lock:
            return {kind: int(self._counts[kind]) for kind in INTERVENTIONS}
