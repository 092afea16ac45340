# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Turn action chunks into timed commands: prefetch, skip-by-timestamp and cross-fading.

Action ``i`` of a chunk observed at ``t_obs`` is meant for ``t_obs + i / control_rate_hz``; the
first ``n_act`` actions are executable, the rest of the chunk only serves as the blending
reference for the next one. The scheduler keeps one plan of timed points. A new chunk replaces
the plan from its first executable point on (points whose time passed while the model ran are
skipped), cross-fading out of the plan over ``blend_steps`` ticks. The next inference is due when
at most ``prefetch_threshold`` executable points remain, so it runs while the current chunk
executes.

All times are one monotonic clock, in seconds. ``n_act``, ``prefetch_threshold`` and the
blending settings given to :meth:`ActionChunkScheduler.update_config` apply from the next chunk.
The scheduler is thread-safe: the inference thread adds chunks while the control timer takes
commands.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading

import numpy as np

from snapflow_ros.runtime.config import PolicyRuntimeConfig


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
    """The per-chunk schedule: fixed for a chunk once it is added."""

    n_act: int
    prefetch_threshold: int
    blending: str
    blend_steps: int
    blend_decay: float

    @classmethod
    def from_config(cls, config: PolicyRuntimeConfig) -> ChunkSettings:
        """The schedule fields of ``config``."""
        return cls(config.n_act, config.prefetch_threshold, config.blending,
                   config.blend_steps, config.blend_decay)


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


class ActionChunkScheduler:
    """Schedule the actions of successive chunks on the control clock (see the module doc)."""

    def __init__(self, config: PolicyRuntimeConfig) -> None:
        self.period = config.control_period_s
        self.output_mode = config.output_mode
        self._half = 0.5 * self.period
        self._pending_settings = ChunkSettings.from_config(config)
        self._settings = self._pending_settings
        self._lock = threading.Lock()
        self._stats: collections.Counter = collections.Counter()
        self._action_dim: int | None = None
        self.reset()

    # --------------------------------------------------------------------------- settings

    def update_config(self, config: PolicyRuntimeConfig) -> None:
        """Take the schedule settings of ``config``; they apply from the next chunk."""
        with self._lock:
            self._pending_settings = ChunkSettings.from_config(config)

    @property
    def settings(self) -> ChunkSettings:
        """The schedule of the chunk being executed."""
        with self._lock:
            return self._settings

    def reset(self) -> None:
        """Forget the plan and the last command (on activation); statistics are kept."""
        with self._lock:
            self._times = np.empty(0, dtype=np.float64)
            self._actions = np.empty((0, self._action_dim or 0), dtype=np.float64)
            self._executable = np.empty(0, dtype=bool)
            self._last_time: float | None = None
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
            if self.output_mode == "trajectory":
                self._consume(t_ready)
            horizon = actions.shape[0]
            n_act = min(settings.n_act, horizon)
            times = t_obs + np.arange(horizon, dtype=np.float64) * self.period
            executable = np.arange(horizon) < n_act
            usable = times >= t_ready - self._half
            if self._last_time is not None:
                usable &= times > self._last_time
            kept = int(np.count_nonzero(executable & usable))
            self._stats["actions_skipped"] += n_act - kept
            if kept == 0:
                self._stats["chunks_late"] += 1
                return 0
            first = int(np.argmax(executable & usable))
            new_times, new_actions = times[first:], actions[first:]
            if settings.blending != "none":
                self._blend_into(new_times, new_actions, min(settings.blend_steps, kept))
            before = self._times < new_times[0]
            self._stats["actions_superseded"] += int(np.count_nonzero(
                self._executable & ~before))
            self._times = np.concatenate([self._times[before], new_times])
            self._actions = np.concatenate([self._actions[before], new_actions])
            self._executable = np.concatenate([self._executable[before], executable[first:]])
            self._new_trajectory = True
            self._stats["chunks_used"] += 1
            return kept

    def _blend_into(self, times: np.ndarray, actions: np.ndarray, steps: int) -> None:
        # The reference is what the robot is commanded now and next: the last command, then the
        # plan (a chunk's unexecuted tail included). Past its end the robot holds its last point.
        ref_times, ref_actions = self._times, self._actions
        if self._last_time is not None:
            ref_times = np.concatenate([[self._last_time], ref_times])
            ref_actions = np.concatenate([self._last_action[None], ref_actions])
        if len(ref_times) == 0:
            return
        weights = blend_weights(self._settings.blending, steps, self._settings.blend_decay)
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

        Returns the latest executable point due by ``now + period / 2``; earlier due points are
        skipped. Times are strictly increasing and never more than one period before ``now``.
        """
        with self._lock:
            due = np.flatnonzero(self._executable & (self._times <= now + self._half))
            if len(due) == 0:
                if self._last_time is not None:
                    self._stats["idle_ticks"] += 1
                return None
            pick = int(due[-1])
            time, action = float(self._times[pick]), self._actions[pick].copy()
            self._stats["actions_skipped"] += len(due) - 1
            keep = np.ones(len(self._times), dtype=bool)
            keep[: pick + 1] = False
            self._keep(keep)
            if time < now - self.period:
                self._stats["actions_skipped"] += 1
                self._stats["idle_ticks"] += 1
                return None
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

    def remaining(self, now: float) -> int:
        """Executable actions not yet executed at ``now``."""
        with self._lock:
            return len(self._remaining_times(now))

    def needs_inference(self, now: float) -> bool:
        """True when at most ``prefetch_threshold`` executable actions remain."""
        with self._lock:
            return len(self._remaining_times(now)) <= self._settings.prefetch_threshold

    def time_until_inference(self, now: float) -> float:
        """Seconds until :meth:`needs_inference` turns true (0 if it is already).

        The inference thread sleeps on it instead of polling.
        """
        with self._lock:
            remaining = self._remaining_times(now)
            excess = len(remaining) - self._settings.prefetch_threshold
            if excess <= 0:
                return 0.0
            return max(0.0, float(remaining[excess - 1]) + self._half - now)

    def last_command(self) -> tuple[float, np.ndarray] | None:
        """The last executed ``(time, action)``, or None."""
        with self._lock:
            if self._last_time is None:
                return None
            return self._last_time, self._last_action.copy()

    def stats(self) -> dict[str, int]:
        """Counters since construction, by name.

        chunks_received / used / late, actions_skipped / superseded / dropped, commands_issued,
        trajectories, idle_ticks.
        """
        keys = ("chunks_received", "chunks_used", "chunks_late", "actions_skipped",
                "actions_superseded", "actions_dropped", "commands_issued", "trajectories",
                "idle_ticks")
        with self._lock:
            return {key: int(self._stats[key]) for key in keys}
