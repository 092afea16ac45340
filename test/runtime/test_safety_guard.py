# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the safety guard: limits, rate limits, NaN refusal, first command, staleness."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.runtime.safety_guard import INTERVENTIONS, SafetyGuard, SafetyGuardConfig

JOINTS = ("shoulder", "elbow", "gripper")
DT = 0.02


def make(**overrides):
    values = {"limit_joint_names": ("shoulder", "gripper"), "lower_limits": (-1.0, 0.0),
              "upper_limits": (1.0, 1.0), "max_delta_per_tick": (0.1,),
              "first_command_mode": "refuse", "first_command_max_distance": 0.3,
              "first_command_ramp_ticks": 4, "max_input_age_s": 0.5}
    values.update(overrides)
    return SafetyGuard(SafetyGuardConfig(**values), JOINTS, DT)


def test_chunks_are_clamped_per_joint_and_unlimited_joints_pass():
    guard = make()
    result = guard.filter_chunk(np.array([[2.0, 50.0, -0.5], [0.5, -50.0, 0.5]]))
    np.testing.assert_array_equal(result.actions, [[1.0, 50.0, 0.0], [0.5, -50.0, 0.5]])
    assert result.publish and result.interventions == {"clamped": 1}
    assert guard.counts()["clamped"] == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_chunk_with_any_non_finite_value_is_refused_whole(bad):
    guard = make()
    chunk = np.zeros((5, 3))
    chunk[3, 1] = bad
    result = guard.filter_chunk(chunk)
    assert result.actions is None and not result.publish
    assert result.interventions == {"non_finite": 1} and "non-finite" in result.reason


def test_wrong_shapes_are_refused():
    guard = make()
    assert guard.filter_chunk(np.zeros((5, 2))).interventions == {"shape_mismatch": 1}
    assert guard.filter_command(np.zeros(4), np.zeros(3)).actions is None
    assert guard.filter_chunk([["a", "b", "c"]]).interventions == {"shape_mismatch": 1}


def test_commands_are_rate_limited_from_the_measured_position_then_the_last_command():
    guard = make(first_command_max_distance=10.0, max_delta_per_tick=(0.25,))
    outputs = [guard.filter_command(np.array([1.0, 1.0, 1.0]), np.zeros(3)).actions
               for _ in range(6)]
    np.testing.assert_array_equal(np.array(outputs)[:, 0], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert guard.counts()["rate_limited"] == 3


def test_per_joint_rate_limits():
    guard = make(max_delta_per_tick=(0.1, 0.2, 0.5), first_command_max_distance=10.0)
    out = guard.filter_command(np.array([1.0, 1.0, 1.0]), np.zeros(3)).actions
    np.testing.assert_allclose(out, [0.1, 0.2, 0.5])


def test_first_command_far_from_the_robot_is_refused_until_one_is_close():
    guard = make(first_command_mode="refuse")
    measured = np.array([0.0, 0.0, 0.5])
    result = guard.filter_command(np.array([0.5, 0.0, 0.5]), measured)
    assert result.actions is None and result.interventions == {"first_command_refused": 1}
    assert "0.500 from the measured position" in result.reason
    close = guard.filter_command(np.array([0.2, 0.0, 0.5]), measured)
    np.testing.assert_allclose(close.actions, [0.1, 0.0, 0.5])  # accepted, rate limited
    # Once running, a far command is rate limited, not refused.
    assert guard.filter_command(np.array([1.0, 1.0, 1.0]), measured).actions is not None


def test_first_command_far_from_the_robot_is_ramped_in():
    guard = make(first_command_mode="ramp", max_delta_per_tick=(1.0,))
    measured = np.array([0.0, 0.0, 0.0])
    target = np.array([0.8, 2.0, 1.0])
    results = [guard.filter_command(target, measured) for _ in range(6)]
    assert results[0].interventions == {"first_command_ramped": 1}
    np.testing.assert_allclose(results[0].actions, target / 4)
    np.testing.assert_allclose(results[1].actions, target / 2)
    np.testing.assert_allclose(results[3].actions, target)
    np.testing.assert_allclose(results[5].actions, target)


def test_a_first_command_needs_a_valid_measurement_inside_the_limits():
    guard = make()
    assert guard.filter_command(np.zeros(3)).interventions == {"no_measurement": 1}
    assert guard.filter_command(np.zeros(3), np.array([0, np.nan, 0])).actions is None
    result = guard.filter_command(np.zeros(3), np.array([1.5, 0.0, 0.5]))
    assert result.interventions == {"measured_outside_limits": 1}
    assert "shoulder" in result.reason
    # Just outside (by less than a tick's change) is a robot at its limit, not a fault.
    assert guard.filter_command(np.array([1.0, 0, 0.5]), np.array([1.05, 0, 0.5])).publish


def test_stale_inputs_hold_and_recovery_rearms_the_first_command_check():
    guard = make(first_command_mode="refuse")
    measured = np.zeros(3)
    assert guard.filter_command(np.zeros(3), measured).publish
    assert guard.update_inputs({"joint_state": 0.1, "camera/top": 0.7})
    assert "camera/top 0.700 s old" in guard.stale_reason
    result = guard.filter_command(np.zeros(3), measured)
    assert result.actions is None and result.interventions == {"stale": 1}
    assert guard.filter_chunk(np.zeros((4, 3))).interventions == {"stale": 1}
    assert guard.update_inputs({"joint_state": 0.1, "camera/top": None})
    assert not guard.update_inputs({"joint_state": 0.1, "camera/top": 0.1})
    # The robot may have moved while nothing was commanded: check against it again.
    far = guard.filter_command(np.array([0.9, 0.0, 0.0]), measured)
    assert far.interventions == {"first_command_refused": 1}
    assert guard.counts()["stale"] == 2


def test_dry_run_computes_but_never_publishes_and_rearms_when_left():
    config = dict(first_command_mode="refuse", dry_run=True, first_command_max_distance=0.3)
    guard = SafetyGuard(SafetyGuardConfig(**config), JOINTS, DT)
    result = guard.filter_command(np.array([0.05, 0, 0]), np.zeros(3))
    assert result.actions is not None and not result.publish
    assert result.interventions == {"dry_run": 1}
    guard.filter_command(np.array([0.1, 0, 0]))
    guard.update_config(SafetyGuardConfig(**{**config, "dry_run": False}))
    assert guard.filter_command(np.array([0.9, 0, 0]), np.zeros(3)).interventions == {
        "first_command_refused": 1}


def test_hold_position():
    guard = make()
    assert guard.hold_position() is None
    np.testing.assert_array_equal(guard.hold_position(np.array([0.2, 3.0, 0.5])), [0.2, 3, 0.5])
    # Just past a limit (less than a tick's change) holds at the limit; further is refused.
    np.testing.assert_array_equal(guard.hold_position(np.array([1.05, 0, 0])), [1.0, 0, 0])
    assert guard.hold_position(np.array([2.0, 0, 0])) is None
    assert guard.hold_position(np.array([np.nan, 0, 0])) is None
    guard.filter_command(np.array([0.1, 0.1, 0.1]), np.zeros(3))
    np.testing.assert_allclose(guard.hold_position(np.ones(3) * 0.5), [0.1, 0.1, 0.1])


def test_trajectories_are_rate_limited_along_their_time_and_continue_the_last_one():
    guard = make(first_command_max_distance=10.0)
    points = [(DT * (i + 1), np.array([1.0, 1.0, 1.0])) for i in range(4)]
    first = guard.filter_trajectory(points, now=10.0, measured=np.zeros(3))
    np.testing.assert_allclose(first.actions[:, 0], [0.1, 0.2, 0.3, 0.4])
    # Two ticks later the robot is commanded 0.2; a trajectory starting half a tick on.
    second = guard.filter_trajectory([(DT / 2, np.ones(3)), (1.5 * DT, np.ones(3))],
                                     now=10.0 + 2 * DT)
    np.testing.assert_allclose(second.actions[:, 0], [0.25, 0.35])


def test_first_trajectory_ramps_in_over_the_configured_time():
    guard = make(first_command_mode="ramp", max_delta_per_tick=(10.0,))
    points = [(DT * (i + 1), np.array([0.8, 0.0, 0.0])) for i in range(6)]
    result = guard.filter_trajectory(points, now=0.0, measured=np.zeros(3))
    np.testing.assert_allclose(result.actions[:, 0], [0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    assert result.interventions["first_command_ramped"] == 1


@pytest.mark.parametrize("times", [[0.0, 0.02], [0.02, 0.02], [0.04, 0.02], [np.nan, 0.02]])
def test_trajectory_times_must_be_positive_and_increasing(times):
    guard = make(first_command_max_distance=10.0)
    result = guard.filter_trajectory([(t, np.zeros(3)) for t in times], 0.0, np.zeros(3))
    assert result.interventions == {"bad_times": 1}


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"limit_joint_names \['wrist'\] are not commanded"):
        SafetyGuard(SafetyGuardConfig(limit_joint_names=("wrist",), lower_limits=(0.0,),
                                      upper_limits=(1.0,)), JOINTS, DT)
    with pytest.raises(ConfigError, match="2 values for 3 commanded joints"):
        SafetyGuard(SafetyGuardConfig(max_delta_per_tick=(0.1, 0.2)), JOINTS, DT)
    with pytest.raises(ConfigError, match="joint names"):
        SafetyGuard(SafetyGuardConfig(), (), DT)


def test_counts_report_every_kind():
    assert set(make().counts()) == set(INTERVENTIONS)


# ------------------------------------------------------------------------ property tests

any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
wild = st.one_of(any_float, st.floats(-2.0, 2.0))
vectors = st.lists(wild, min_size=3, max_size=3).map(np.array)
sane = st.lists(st.floats(-1.2, 1.2), min_size=3, max_size=3).map(np.array)


@st.composite
def guards(draw):
    lows = draw(st.lists(st.floats(-3.0, 0.0), min_size=2, max_size=2))
    widths = draw(st.lists(st.floats(0.0, 3.0), min_size=2, max_size=2))
    deltas = draw(st.lists(st.floats(1e-3, 1.0), min_size=3, max_size=3))
    config = SafetyGuardConfig(
        limit_joint_names=("shoulder", "gripper"),
        lower_limits=tuple(lows), upper_limits=tuple(lo + w for lo, w in zip(lows, widths)),
        max_delta_per_tick=tuple(deltas),
        first_command_mode=draw(st.sampled_from(["refuse", "ramp"])),
        first_command_max_distance=draw(st.floats(0.0, 2.0)),
        first_command_ramp_ticks=draw(st.integers(1, 5)))
    return SafetyGuard(config, JOINTS, DT)


def assert_safe(guard, output, origin, ticks=1.0):
    assert output.shape == (3,) and np.all(np.isfinite(output))
    assert np.all(output >= guard.lower) and np.all(output <= guard.upper)
    assert np.all(np.abs(output - origin) <= guard.max_delta * ticks * (1 + 1e-9) + 1e-12)


@settings(max_examples=150, deadline=None)
@given(guard=guards(), commands=st.lists(st.tuples(vectors, st.one_of(st.none(), sane, vectors),
                                                   st.booleans()), min_size=1, max_size=25))
def test_no_command_leaves_the_guard_unsafe(guard, commands):
    previous = None
    for action, measured, stale in commands:
        was_stale = guard.stale
        guard.update_inputs({"joint_state": 1.0 if stale else 0.0})
        if was_stale and not stale:
            previous = None  # re-armed: the next command starts from the measured position
        result = guard.filter_command(action, measured)
        if result.actions is None:
            assert not result.publish
            continue
        origin = previous if previous is not None else np.asarray(measured, dtype=float)
        assert_safe(guard, result.actions, origin)
        previous = result.actions


@settings(max_examples=100, deadline=None)
@given(guard=guards(), chunk=st.lists(vectors, min_size=1, max_size=6))
def test_no_chunk_leaves_the_guard_outside_limits_or_non_finite(guard, chunk):
    result = guard.filter_chunk(np.stack(chunk))
    if result.actions is not None:
        assert np.all(np.isfinite(result.actions))
        assert np.all(result.actions >= guard.lower) and np.all(result.actions <= guard.upper)
    else:
        assert not np.all(np.isfinite(np.stack(chunk)))


@settings(max_examples=100, deadline=None)
@given(guard=guards(), trajectories=st.lists(
    st.tuples(st.lists(st.tuples(st.floats(0.001, 0.05), vectors), min_size=1, max_size=6),
              st.floats(0.0, 0.1), sane), min_size=1, max_size=5))
def test_no_trajectory_leaves_the_guard_unsafe(guard, trajectories):
    now, sent = 0.0, None  # sent: (absolute times, actions) of the last accepted trajectory
    for steps, wait, measured in trajectories:
        now += wait
        times = np.cumsum([step for step, _ in steps])
        result = guard.filter_trajectory([(t, a) for t, (_, a) in zip(times, steps)], now,
                                         measured)
        if result.actions is None:
            continue
        if sent is None:
            origin = measured
        else:  # where the previous trajectory has the robot at ``now``
            origin = np.array([np.interp(now, sent[0], sent[1][:, j]) for j in range(3)])
        previous, previous_time = origin, 0.0
        for time, output in zip(times, result.actions):
            assert_safe(guard, output, previous, (time - previous_time) / DT)
            previous, previous_time = output, time
        sent = (now + times, result.actions)
