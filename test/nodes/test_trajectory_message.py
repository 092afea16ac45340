# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one JointTrajectory builder: names, positions, times from start and the stamp."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time

from snapflow_ros.nodes.trajectory_message import duration_message, trajectory_message


def test_points_become_timed_positions_under_the_given_stamp():
    stamp = Time(sec=12, nanosec=5)
    message = trajectory_message(("a", "b"), [(0.02, np.array([1.0, 2.0])),
                                              (1.5, np.array([3.0, 4.0]))], stamp)
    assert list(message.joint_names) == ["a", "b"]
    assert message.header.stamp == stamp
    assert [list(p.positions) for p in message.points] == [[1.0, 2.0], [3.0, 4.0]]
    assert [(p.time_from_start.sec, p.time_from_start.nanosec) for p in message.points] == [
        (0, 20_000_000), (1, 500_000_000)]


def test_a_missing_stamp_means_on_receipt_and_durations_never_go_negative():
    assert trajectory_message(["a"], [(0.1, [0.0])]).header.stamp == Time()
    assert duration_message(-1.0) == duration_message(0.0)
    assert (duration_message(2.0000000004).sec, duration_message(2.0000000004).nanosec) == (2, 0)
