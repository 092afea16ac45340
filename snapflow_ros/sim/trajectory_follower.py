# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Execute streamed joint trajectories at fixed control ticks, as a trajectory controller does.

A trajectory is a list of points, each a joint-position vector with an absolute time (its
message's ``header.stamp + time_from_start``). At every control tick the follower yields one
joint target, the trajectory at the tick's start plus ``lead_ns``. The sim robot uses a lead of
one tick: a point is the position to reach at its time, so the tick that ends at a point's time
executes it, as ros2_control's JointTrajectoryController samples at the end of its control cycle
(``time + period``, since ros2_controllers PR 1306). A chunk's action ``i`` observed at ``t_obs``
and sent for ``t_obs + (i + 1) * tick`` then runs during step ``i`` after the observation, as the
demonstrations were recorded (docs/design.md, "Command timing"). Below, "the tick's time" is
that sampling time:

- a point whose time is within half a tick of the tick is the target of that tick;
- between points the target is interpolated linearly (as ``ros2_control``'s
  JointTrajectoryController interpolates, though it uses splines), starting from the last
  executed target; after the last point the last target is held;
- a new trajectory replaces every queued point from its first point's time on (points before it
  stay), so a policy can stream overlapping action chunks;
- points already in the past when a trajectory arrives are not replayed: the target the
  trajectory has at the next tick (the last expired point, or the interpolation towards the
  first future point) is executed at the next tick instead. A single-point message with
  ``time_from_start = 0`` therefore is a streamed command: with a lead of one tick, a point
  stamped with an observation is already due and runs in the next step, the one it answers;
- trajectories that start before the current episode started are stale and ignored.

Times are integer nanoseconds on whatever clock the caller uses (simulated or wall time).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np


class JointTrajectoryFollower:
    """Queue of timed joint-position points sampled once per control tick."""

    def __init__(self, num_joints: int, tick_ns: int, *, interpolate: bool = True,
                 lead_ns: int = 0) -> None:
        if num_joints < 1 or tick_ns < 1 or lead_ns < 0:
            raise ValueError("num_joints and tick_ns must be positive, lead_ns not negative")
        self.num_joints = num_joints
        self.tick_ns = int(tick_ns)
        self.interpolate = interpolate
        # The tick starting at t executes the trajectory at t + lead_ns (the sim robot: one tick).
        self.lead_ns = int(lead_ns)
        self._tolerance = self.tick_ns // 2
        self._times: list[int] = []
        self._points: list[np.ndarray] = []
        self._anchor_time = 0
        self._anchor = np.zeros(num_joints)
        self._epoch = 0

    @property
    def last_command(self) -> np.ndarray:
        """The target of the last executed tick (or the reset pose): (num_joints,)."""
        return self._anchor.copy()

    @property
    def pending(self) -> int:
        """Points queued for future ticks."""
        return len(self._times)

    @property
    def last_point_time(self) -> int | None:
        """Time (ns) of the last queued point, None when nothing is queued."""
        return self._times[-1] if self._times else None

    def reset(self, time_ns: int, positions: Sequence[float]) -> None:
        """Start a new episode at ``time_ns`` holding ``positions``; forget queued points."""
        self._anchor = self._vector(positions)
        self._anchor_time = self._epoch = int(time_ns)
        self.clear()

    def clear(self) -> None:
        """Drop queued points; the last target is held (an empty trajectory message)."""
        self._times.clear()
        self._points.clear()

    def _vector(self, positions: Sequence[float]) -> np.ndarray:
        vector = np.asarray(positions, dtype=np.float64).reshape(-1)
        if vector.shape != (self.num_joints,) or not np.all(np.isfinite(vector)):
            raise ValueError(f"expected {self.num_joints} finite joint positions, "
                             f"got {np.asarray(positions).shape}")
        return vector

    def insert(self, times_ns: Sequence[int], positions: Sequence[Sequence[float]],
               now_ns: int) -> int:
        """Merge a trajectory received at ``now_ns`` (start of the next tick not yet executed).

        ``times_ns``: absolute point times; ``positions``: (N, num_joints). Returns how many
        points were queued (0 for a trajectory from before the current episode).
        """
        if len(times_ns) != len(positions):
            raise ValueError("times_ns and positions differ in length")
        if not len(times_ns):
            return 0
        order = np.argsort(np.asarray(times_ns, dtype=np.int64), kind="stable")
        times = [int(times_ns[i]) for i in order]
        points = [self._vector(positions[i]) for i in order]
        if times[0] < self._epoch - self._tolerance:
            return 0  # computed in an earlier episode
        now_ns = int(now_ns) + self.lead_ns
        expired = sum(t < now_ns - self._tolerance for t in times)
        if expired:
            future_times, future_points = times[expired:], points[expired:]
            if future_times and future_times[0] <= now_ns + self._tolerance:
                times, points = future_times, future_points
            else:
                if future_times and self.interpolate:
                    late = self._lerp(times[expired - 1], points[expired - 1],
                                      future_times[0], future_points[0], now_ns)
                else:
                    late = points[expired - 1]
                times, points = [int(now_ns)] + future_times, [late] + future_points
        keep = bisect.bisect_left(self._times, times[0] - self._tolerance)
        del self._times[keep:], self._points[keep:]
        self._times += times
        self._points += points
        return len(times)

    def covers(self, time_ns: int) -> bool:
        """True when the queued trajectory defines the target of the tick from ``time_ns``."""
        time_ns = int(time_ns) + self.lead_ns
        return bool(self._times) and self._times[-1] >= time_ns - self._tolerance

    @staticmethod
    def _lerp(t0: int, p0: np.ndarray, t1: int, p1: np.ndarray, t: int) -> np.ndarray:
        if t1 <= t0:
            return p1.copy()
        fraction = min(max((t - t0) / (t1 - t0), 0.0), 1.0)
        return p0 + fraction * (p1 - p0)

    def sample(self, time_ns: int) -> np.ndarray:
        """Joint target of the tick starting at ``time_ns``: (num_joints,); consumes points."""
        time_ns = int(time_ns) + self.lead_ns
        due = bisect.bisect_right(self._times, time_ns + self._tolerance)
        if due:
            last_time, last = self._times[due - 1], self._points[due - 1]
            del self._times[:due], self._points[:due]
            if last_time < time_ns - self._tolerance and self._times and self.interpolate:
                # The tick came late (wall-clock jitter): resume mid-segment.
                target = self._lerp(last_time, last, self._times[0], self._points[0], time_ns)
            else:
                target = last.copy()
        elif self._times and self.interpolate:
            target = self._lerp(self._anchor_time, self._anchor, self._times[0], self._points[0],
                                time_ns)
        else:
            target = self._anchor.copy()
        self._anchor, self._anchor_time = target, int(time_ns)
        return target.copy()
