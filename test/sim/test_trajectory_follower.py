# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Streamed joint trajectories executed per control tick, as a trajectory controller would."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapflow_ros.sim.trajectory_follower import JointTrajectoryFollower

TICK = 20_000_000  # 20 ms in ns


def follower(interpolate=True, start=0):
    f = JointTrajectoryFollower(2, TICK, interpolate=interpolate)
    f.reset(start, [0.0, 0.0])
    return f


def test_streamed_point_is_applied_at_its_tick_then_held():
    f = follower()
    assert not f.covers(0)
    f.insert([0], [[1.0, 2.0]], now_ns=0)
    assert f.covers(0)
    np.testing.assert_array_equal(f.sample(0), [1.0, 2.0])
    assert not f.covers(TICK), "a streamed command covers its own tick only"
    np.testing.assert_array_equal(f.sample(TICK), [1.0, 2.0])


def test_chunk_points_run_one_per_tick_in_order():
    f = follower()
    chunk = [[float(i), -float(i)] for i in range(5)]
    f.insert([i * TICK for i in range(5)], chunk, now_ns=0)
    assert [f.sample(i * TICK).tolist() for i in range(5)] == chunk
    assert f.pending == 0


def test_point_times_within_half_a_tick_count_as_that_tick():
    f = follower()
    f.insert([TICK + 3_000_000], [[5.0, 5.0]], now_ns=0)  # 23 ms: jitter on a 20 ms tick
    f.sample(0)
    np.testing.assert_array_equal(f.sample(TICK), [5.0, 5.0])


def test_new_trajectory_replaces_only_points_from_its_start_on():
    f = follower()
    f.insert([i * TICK for i in range(6)], [[1.0, 1.0]] * 6, now_ns=0)
    f.insert([3 * TICK, 4 * TICK], [[9.0, 9.0], [8.0, 8.0]], now_ns=0)
    samples = [f.sample(i * TICK)[0] for i in range(6)]
    assert samples == [1.0, 1.0, 1.0, 9.0, 8.0, 8.0]


def test_sparse_points_are_interpolated_from_the_last_target():
    f = follower()
    f.insert([4 * TICK], [[4.0, 8.0]], now_ns=TICK)
    f.sample(0)  # the tick at 0 holds the reset pose
    values = [f.sample(i * TICK)[0] for i in range(1, 6)]
    np.testing.assert_allclose(values, [1.0, 2.0, 3.0, 4.0, 4.0])


def test_without_interpolation_each_point_is_held_until_the_next():
    f = follower(interpolate=False)
    f.insert([0, 3 * TICK], [[1.0, 1.0], [4.0, 4.0]], now_ns=0)
    assert [f.sample(i * TICK)[0] for i in range(5)] == [1.0, 1.0, 1.0, 4.0, 4.0]


def test_late_trajectory_skips_expired_points():
    f = follower()
    # Stamped at 0, received when the tick at 60 ms is next: points 0..2 are already past.
    f.insert([i * TICK for i in range(5)], [[float(i), 0.0] for i in range(5)], now_ns=3 * TICK)
    assert [f.sample(i * TICK)[0] for i in (3, 4)] == [3.0, 4.0]


def test_late_streamed_command_is_applied_at_the_next_tick():
    f = follower()
    f.insert([0], [[7.0, 7.0]], now_ns=2 * TICK)
    assert f.covers(2 * TICK)
    np.testing.assert_array_equal(f.sample(2 * TICK), [7.0, 7.0])


def test_trajectory_from_before_the_episode_is_ignored():
    f = follower(start=100 * TICK)
    assert f.insert([99 * TICK], [[3.0, 3.0]], now_ns=100 * TICK) == 0
    np.testing.assert_array_equal(f.sample(100 * TICK), [0.0, 0.0])


def test_empty_trajectory_clears_the_queue_and_holds():
    f = follower()
    f.insert([0, TICK, 2 * TICK], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], now_ns=0)
    f.sample(0)
    f.clear()
    assert f.sample(TICK).tolist() == [1.0, 1.0] and f.sample(2 * TICK).tolist() == [1.0, 1.0]


def test_rejects_wrong_width_and_non_finite_points():
    f = follower()
    with pytest.raises(ValueError):
        f.insert([0], [[1.0, 2.0, 3.0]], now_ns=0)
    with pytest.raises(ValueError):
        f.insert([0], [[1.0, float("nan")]], now_ns=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(-3, 3)), min_size=1, max_size=12))
def test_points_on_ticks_are_hit_exactly_and_between_them_stay_in_range(gaps_and_values):
    f = follower()
    ticks = np.cumsum([g for g, _ in gaps_and_values])
    values = [v for _, v in gaps_and_values]
    f.insert([int(t) * TICK for t in ticks], [[v, -v] for v in values], now_ns=0)
    previous, schedule = 0.0, dict(zip(ticks.tolist(), values))
    for tick in range(int(ticks[-1]) + 2):
        got = f.sample(tick * TICK)[0]
        if tick in schedule:
            assert got == schedule[tick]
            previous = got
        else:
            upcoming = [schedule[t] for t in sorted(schedule) if t > tick]
            bound = [previous] + upcoming[:1]
            assert min(bound) - 1e-9 <= got <= max(bound) + 1e-9
