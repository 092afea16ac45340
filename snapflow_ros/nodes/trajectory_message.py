# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build ``trajectory_msgs/JointTrajectory`` messages: the one builder the node and benchmarks use.

A point list is ``[(time_from_start (s), positions (A,))]``, as
:class:`~snapflow_ros.runtime.policy_controller.PolicyController` hands them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def duration_message(seconds: float) -> Duration:
    """``builtin_interfaces/Duration`` of ``seconds`` (rounded to ns; negative becomes zero)."""
    nanoseconds = max(0, int(round(float(seconds) * 1e9)))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def trajectory_message(joint_names: Sequence[str],
                       points: Iterable[tuple[float, np.ndarray]],
                       stamp: Time | None = None) -> JointTrajectory:
    """A JointTrajectory for ``joint_names`` of ``points`` ``[(time_from_start (s), (A,))]``.

    ``stamp`` (``builtin_interfaces/Time``, e.g. ``clock.now().to_msg()``) is when the
    trajectory starts; a JointTrajectoryController reads a zero stamp (None) as "on receipt".
    """
    message = JointTrajectory()
    if stamp is not None:
        message.header.stamp = stamp
    message.joint_names = [str(name) for name in joint_names]
    for time_from_start, positions in points:
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in np.asarray(positions, dtype=np.float64).ravel()]
        point.time_from_start = duration_message(time_from_start)
        message.points.append(point)
    return message
