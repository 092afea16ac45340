# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Turn action chunks into timed commands: prefetch, skip-by-timestamp and cross-fading.

Action ``i`` of a chunk observed at ``t_obs`` is meant for ``t_obs + i / control_rate_hz``.
Actions whose time passed while the model ran are skipped; the next ``n_act`` actions are
executable (fewer only where the chunk ends first, counted as ``chunks_short``), the rest of the
chunk only serves as the blending reference for the next one. So a full ``n_act`` reaches the
robot even when the chunk's first action was already late. The scheduler keeps one plan of timed
points. A new chunk replaces the plan from its first executable point on, cross-fading out of the
plan over ``blend_steps`` ticks. The next inference is due when at most ``prefetch_threshold``
executable points remain, so it runs while the current chunk executes.

Output modes: ``stream`` resamples each chunk onto the control timer's ticks (the tick at ``g``
executes the chunk's trajectory at ``g``, linear between actions) and hands out one point per
tick (:meth:`ActionChunkScheduler.next_command`); ``trajectory`` keeps the chunk's own times and
hands out the whole plan when a chunk arrives (:meth:`ActionChunkScheduler.take_trajectory`).

All times are one monotonic clock, in seconds. ``n_act``, ``prefetch_threshold`` and the
blending settings of the :class:`SchedulerConfig` given to
:meth:`ActionChunkScheduler.update_config` apply from the next chunk.
The scheduler is thread-safe: the inference thread adds chunks while the control timer takes
commands.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param

OUTPUT_MODES = ("trajectory", "stream")
BLENDINGS = ("none", "linear", "exponential")


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """How chunks become timed commands: rate, output mode, ``n_act``, prefetch, cross-fade."""

    control_rate_hz: float = param(50.0, "Rate at which chunk actions are executed (Hz).",
                                   low=1.0, high=1000.0)
    output_mode: str = param(
        "trajectory", "trajectory: one JointTrajectory per chunk; stream: one point per tick.",
        choices=OUTPUT_MODES,
    )
    n_act: int = param(
        10, "Actions executed from each chunk (1..chunk size), counted from its first action "
        "still ahead when the chunk arrives.", low=1, high=10000, runtime=True)
    prefetch_threshold: int = param(
        3, "Start the next inference when this many actions of the chunk remain.",
        low=0, high=10000, runtime=True,
    )
    blending: str = param("linear", "Cross-fade from the previous chunk into a new one.",
                          choices=BLENDINGS, runtime=True)
    blend_steps: int = param(5, "Length of the cross-fade (control ticks).",
                             low=1, high=10000, runtime=True)
    blend_decay: float = param(3.0, "Steepness of the exponential cross-fade (1/overlap).",
                               low=0.01, high=100.0, runtime=True)
    chunk_size: int = param(0, "Chunk length H of the loaded checkpoint (0 = not loaded yet).",
                            low=0, ros=False)

    def __post_init__(self) -> None:
        check_config(self)
        if self.chunk_size and self.n_act > self.chunk_size:
            raise ConfigError(f"n_act={self.n_act} exceeds the chunk size {self.chunk_size}")

    @property
    def control_period_s(self) -> float:
        """One control tick (s)."""
        return 1.0 / self.control_rate_hz


def blend_weights(blending: str, steps: int, decay: float) -> np.ndarray:
    """Weights ``(steps,)`` of the new chunk over a cross-fade, rising in (0, 1).

    ``linear``: ``u = (j + 1) / (steps + 1)``; ``exponential``:
    ``(1 - exp(-decay u)) / (1 - exp(-decay))``, which hands over faster early on.
    """
    u = (np.arange(steps, dtype=np.float64) + 1.0) / (steps + 1.0)
    if blending == "linear":
        return u
    if blending == "exponential":
        return -np.expm1(-decay * u) / -math.expm1(-decay)
    raise ValueError(f"unknown blending '{blending}'")


class EpisodeTime:
    """Clock seconds as seconds since an episode's first observation, exact from nanoseconds.

    Under a simulated clock each step's time is a whole number of nanoseconds, but as float
    seconds since the clock's zero the same step of two episodes rounds differently, and the
    schedule's and the guard's arithmetic differ in the last bits (which the physics amplifies).
    Counted from the episode's start, step k has the same float time in every episode. Before
    :meth:`start_once` times pass unchanged (real time never starts one).
    """

    def __init__(self) -> None:
        self.epoch_ns: int | None = None

    def start_once(self, time_s: float) -> float:
        """Count from ``time_s`` (clock seconds) on, unless started; ``time_s`` since the start."""
        if self.epoch_ns is None:
            self.epoch_ns = round(time_s * 1e9)
        return self(time_s)

    def __call__(self, time_s: float) -> float:
        """``time_s`` (clock seconds) in seconds since the start."""
        return time_s if self.epoch_ns is None else (round(time_s * 1e9) - self.epoch_ns) * 1e-9


class ActionChunkScheduler:
    """Schedule the actions of successive chunks on the control clock (see the module doc)."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.period = config.control_period_s
        self.output_mode = config.output_mode
        self._half = 0.5 * self.period
        self._pending_settings = config
        self._settings = config
        self._lock = threading.Lock()
        self._stats: collections.Counter = collections.Counter()
        self._action_dim: int | None = None
        self.reset()

    # --------------------------------------------------------------------------- settings

    def update_config(self, config: SchedulerConfig) -> None:
        """Take the runtime settings of ``config``; they apply from the next chunk.

        The control rate and output mode are fixed for the scheduler's life.
        """
        with self._lock:
            self._pending_settings = config

    @property
    def settings(self) -> SchedulerConfig:
        """The settings of the chunk being executed (``update_config`` applies at the next)."""
        with self._lock:
            return self._settings

    def reset(self) -> None:
        """Forget the plan and the last command (on activation); statistics are kept."""
        with self._lock:
            self._times = np.empty(0, dtype=np.float64)
            self._actions = np.empty((0, self._action_dim or 0), dtype=np.float64)
            self._executable = np.empty(0, dtype=bool)
            self._last_time: float | None = None
            self._ticks: collections.deque = collections.deque(maxlen=32)
            self._last_action: np.ndarray | None = None
            self._new_trajectory = False

    def clear_plan(self) -> None:
        """Drop every pending point but remember the last command (e.g. when inputs go stale)."""
        with self._lock:
            self._stats["actions_dropped"] += int(self._executable.sum())
            self._keep(np.zeros(len(self._times), dtype=bool))
            self._new_trajectory = False

    # ------------------------------------------------------------------------------ chunks

    def add_chunk(self, actions: np.ndarray, t_obs: float, t_ready: float) -> int:
        """Merge a chunk ``(H, A)`` (robot units); returns how many executable actions were kept.

        ``t_obs``: time of the observation (action 0's time), ``t_ready``: when the chunk became
        available (s). Executable actions whose time passed before ``t_ready`` (by more than
        half a tick) are skipped and counted; a chunk with none left is counted as late and
        changes nothing.
        """
        actions = np.array(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] == 0:
            raise ValueError(f"a chunk must be a non-empty (H, A) array, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("a chunk must be finite (filter it with the SafetyGuard first)")
        if not (math.isfinite(t_obs) and math.isfinite(t_ready)):
            raise ValueError(f"chunk times must be finite: t_obs={t_obs}, t_ready={t_ready}")
        with self._lock:
            if self._action_dim is None:
                self._action_dim = actions.shape[1]
                self._actions = self._actions.reshape(0, self._action_dim)
            elif actions.shape[1] != self._action_dim:
                raise ValueError(f"chunk has {actions.shape[1]} action dims, "
                                 f"the scheduler runs {self._action_dim}")
            self._settings = settings = self._pending_settings
            self._stats["chunks_received"] += 1
            horizon = actions.shape[0]
            n_act = min(settings.n_act, horizon)
            chunk_times = t_obs + np.arange(horizon, dtype=np.float64) * self.period
            if self.output_mode == "stream":
                new_times, new_actions, kept, skipped = self._on_tick_grid(
                    actions, chunk_times, n_act, t_ready)
            else:
                self._consume(t_ready)
                usable = chunk_times >= t_ready - self._half
                if self._last_time is not None:
                    usable &= chunk_times > self._last_time
                first = int(np.argmax(usable)) if usable.any() else horizon
                new_times, new_actions = chunk_times[first:], actions[first:]
                # The window starts at the first action still ahead: a late first action
                # shifts it instead of shortening it.
                kept, skipped = min(n_act, horizon - first), min(first, n_act)
            self._stats["actions_skipped"] += skipped
            if kept == 0:
                self._stats["chunks_late"] += 1
                return 0
            if kept < n_act:
                self._stats["chunks_short"] += 1
            if settings.blending != "none":
                self._blend_into(new_times, new_actions)
            # Old points within half a period of the new first one are superseded: a tick would
            # take only one of the two, and a trajectory controller would make a near-vertical
            # step between them.
            before = self._times < new_times[0] - self._half
            self._stats["actions_superseded"] += int(np.count_nonzero(
                self._executable & ~before))
            executable = np.arange(len(new_times)) < kept
            self._times = np.concatenate([self._times[before], new_times])
            self._actions = np.concatenate([self._actions[before], new_actions])
            self._executable = np.concatenate([self._executable[before], executable])
            self._new_trajectory = True
            self._stats["chunks_used"] += 1
            return kept

    def _tick_origin(self) -> float | None:
        """A time on the control timer's grid, estimated from recent ticks (None: no ticks)."""
        if not self._ticks:
            return None
        ticks = np.fromiter(self._ticks, dtype=np.float64)
        last = ticks[-1]
        ticks = ticks[last - ticks <= len(self._ticks) * self.period]

        def offsets(reference: float) -> np.ndarray:
            return np.mod(ticks - reference + self._half, self.period) - self._half

        # Median lateness, in two passes so that the cluster of ticks is centred away from the
        # +-half-period wrap before the second median.
        centre = last + float(np.median(offsets(last)))
        return centre + float(np.median(offsets(centre)))

    def _on_tick_grid(self, actions: np.ndarray, chunk_times: np.ndarray, n_act: int,
                      t_ready: float) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Stream mode: resample the executable part of a chunk onto the control ticks.

        Returns the new plan's times and actions (``n_act`` executable points on ticks from the
        first one the chunk can still make, fewer where the chunk ends first, then the chunk's
        tail at its own times), the number of executable points and of the chunk's first
        ``n_act`` actions whose time had passed. A tick at ``g`` executes the chunk's trajectory
        at ``g`` (linear between actions), so the chunk's phase against the timer does not
        matter.
        """
        origin = self._tick_origin()
        if origin is None:
            origin = t_ready
        start = max(t_ready, chunk_times[0]) - self._half
        end = chunk_times[-1] + self._half
        # The small tolerance keeps floating-point noise from moving a tick across a boundary.
        first = math.ceil((start - origin) / self.period - 1e-6)
        if self._ticks:
            # The tick of the last call has been served: the chunk starts at a later one, so
            # that its first (cross-faded) point is the first one executed.
            first = max(first, round((self._ticks[-1] - origin) / self.period) + 1)
        stop = math.ceil((end - origin) / self.period - 1e-6)
        grid = origin + np.arange(first, max(first, stop), dtype=np.float64) * self.period
        if self._last_time is not None:
            grid = grid[grid > self._last_time + 1e-6 * self.period]
        grid = grid[:n_act]
        on_time = int(np.count_nonzero(grid < chunk_times[0] + n_act * self.period - self._half))
        values = np.stack([np.interp(grid, chunk_times, actions[:, j])
                           for j in range(actions.shape[1])], axis=1)
        tail = (chunk_times > grid[-1] + self._half * (1 + 1e-6)) if len(grid) else slice(0, 0)
        return (np.concatenate([grid, chunk_times[tail]]),
                np.concatenate([values, actions[tail]]), len(grid), n_act - on_time)

    def _blend_into(self, times: np.ndarray, actions: np.ndarray) -> None:
        # The reference is what the robot is commanded now and next: the last command, then the
        # plan (a chunk's unexecuted tail included). Past its end the robot holds its last point.
        ref_times, ref_actions = self._times, self._actions
        if self._last_time is not None:
            ref_times = np.concatenate([[self._last_time], ref_times])
            ref_actions = np.concatenate([self._last_action[None], ref_actions])
        if len(ref_times) == 0:
            return
        # The fade lasts blend_steps ticks even if the next chunk arrives first: that chunk then
        # fades out of this partly blended plan, so no seam is sharper than the setting.
        settings = self._settings
        steps = min(settings.blend_steps, len(times))
        weights = blend_weights(settings.blending, settings.blend_steps,
                                settings.blend_decay)[:steps]
        reference = np.stack([np.interp(times[:steps], ref_times, ref_actions[:, j])
                              for j in range(ref_actions.shape[1])], axis=1)
        actions[:steps] = weights[:, None] * actions[:steps] + (1.0 - weights[:, None]) * reference

    # ---------------------------------------------------------------------------- outputs

    def _keep(self, mask: np.ndarray) -> None:
        self._times = self._times[mask]
        self._actions = self._actions[mask]
        self._executable = self._executable[mask]

    def _consume(self, now: float) -> None:
        """Trajectory mode: points more than half a tick old have been executed."""
        passed = self._times < now - self._half
        done = np.flatnonzero(passed & self._executable)
        if len(done):
            self._last_time = float(self._times[done[-1]])
            self._last_action = self._actions[done[-1]].copy()
        self._keep(~passed)

    def next_command(self, now: float) -> tuple[float, np.ndarray] | None:
        """Stream mode, once per control tick: ``(time, action (A,))`` to execute now, or None.

        Points more than half a period old are skipped (counted); the earliest remaining one is
        executed if it is due within half a period. Chunks are resampled onto the timer's ticks
        (estimated from these calls), so each tick finds exactly one point while the plan lasts.
        Times are strictly increasing, in ``[now - period / 2, now + period / 2]``.
        """
        with self._lock:
            self._ticks.append(now)
            late = self._times < now - self._half
            self._stats["actions_skipped"] += int(np.count_nonzero(late & self._executable))
            self._keep(~late)
            executable = np.flatnonzero(self._executable)
            if len(executable) == 0 or self._times[executable[0]] > now + self._half:
                if self._last_time is not None:
                    self._stats["idle_ticks"] += 1
                return None
            pick = int(executable[0])
            time, action = float(self._times[pick]), self._actions[pick].copy()
            keep = np.ones(len(self._times), dtype=bool)
            keep[: pick + 1] = False
            self._keep(keep)
            self._last_time, self._last_action = time, action
            self._stats["commands_issued"] += 1
            return time, action.copy()

    def take_trajectory(self, now: float) -> list[tuple[float, np.ndarray]]:
        """Trajectory mode, after a chunk was added: ``[(time_from_start (s), action (A,))]``.

        The plan's executable points still ahead (including the previous chunk's points before
        the seam), each to be reached one period after its time, so ``time_from_start > period
        / 2`` and increasing; stamp the message with ``now``. Empty when no chunk came since the
        last call.
        """
        with self._lock:
            self._consume(now)
            if not self._new_trajectory:
                return []
            self._new_trajectory = False
            points = np.flatnonzero(self._executable)
            if len(points):
                self._stats["trajectories"] += 1
                self._stats["commands_issued"] += len(points)
            return [(float(self._times[i]) + self.period - now, self._actions[i].copy())
                    for i in points]

    # -------------------------------------------------------------------------- inference

    def _remaining_times(self, now: float) -> np.ndarray:
        return self._times[self._executable & (self._times >= now - self._half)]

    def time_until_inference(self, now: float) -> float:
        """Seconds until at most ``prefetch_threshold`` executable actions remain (0: now).

        The next inference is due then; the inference thread sleeps on it instead of polling.
        """
        with self._lock:
            remaining = self._remaining_times(now)
            excess = len(remaining) - self._settings.prefetch_threshold
            if excess <= 0:
                return 0.0
            return max(0.0, float(remaining[excess - 1]) + self._half - now)

    def stats(self) -> dict[str, int]:
        """Counters since construction, by name.

        chunks_received / used / late / short (fewer than ``n_act`` executable actions left in the
        chunk), actions_skipped / superseded / dropped, commands_issued, trajectories, idle_ticks.
        """
        keys = ("chunks_received", "chunks_used", "chunks_late", "chunks_short", "actions_skipped",
                "actions_superseded", "actions_dropped", "commands_issued", "trajectories",
                "idle_ticks")
        with self._lock:
            return {key: int(self._stats[key]) for key in keys}
