# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the action chunk scheduler: timing, skipping, prefetch, blending, trajectories."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapflow_ros.runtime.chunk_scheduler import (
    ActionChunkScheduler,
    SchedulerConfig,
    blend_weights,
)

RATE = 50.0
DT = 1.0 / RATE


def make(**overrides):
    values = {"control_rate_hz": RATE, "output_mode": "stream", "n_act": 5,
              "prefetch_threshold": 2, "blending": "none"}
    values.update(overrides)
    return ActionChunkScheduler(SchedulerConfig(**values))


def due(scheduler, now):
    """Whether the next inference is due at ``now``."""
    return scheduler.time_until_inference(now) == 0.0


def ramp_chunk(horizon=10, dims=2, start=0.0):
    return np.tile(start + np.arange(horizon, dtype=float)[:, None], (1, dims))


def test_actions_are_executed_at_their_time_and_only_n_act_of_them():
    scheduler = make()
    assert due(scheduler, 0.0)
    assert scheduler.add_chunk(ramp_chunk(), t_obs=1.0, t_ready=1.0) == 5
    commands = [scheduler.next_command(1.0 + k * DT + 0.001) for k in range(8)]
    assert [c[1][0] for c in commands[:5]] == [0, 1, 2, 3, 4]
    assert [c[0] for c in commands[:5]] == pytest.approx([1.0 + k * DT for k in range(5)])
    assert commands[5:] == [None, None, None]
    stats = scheduler.stats()
    assert stats["commands_issued"] == 5 and stats["idle_ticks"] == 3


def test_actions_whose_time_passed_during_inference_are_skipped_and_n_act_still_run():
    scheduler = make(n_act=8)
    assert scheduler.next_command(0.0) is None  # the timer ticks on multiples of DT
    # Ready 3.2 ticks after the observation: actions 0..2 passed; 3..10 are the n_act executed.
    assert scheduler.add_chunk(ramp_chunk(horizon=12), t_obs=0.0, t_ready=3.2 * DT) == 8
    assert scheduler.stats()["actions_skipped"] == 3
    commands = [scheduler.next_command(k * DT) for k in range(3, 13)]
    assert [c[1][0] for c in commands[:8]] == list(range(3, 11))
    assert commands[0][0] == pytest.approx(3 * DT) and commands[8:] == [None, None]
    assert scheduler.stats()["chunks_short"] == 0


def test_a_chunk_too_short_for_n_act_after_its_late_actions_is_counted_short():
    scheduler = make(n_act=8)
    scheduler.next_command(0.0)
    assert scheduler.add_chunk(ramp_chunk(horizon=10), t_obs=0.0, t_ready=3.2 * DT) == 7
    stats = scheduler.stats()
    assert stats["chunks_short"] == 1 and stats["actions_skipped"] == 3


def test_a_chunk_that_arrives_after_all_its_actions_is_late_and_changes_nothing():
    scheduler = make(n_act=4)
    scheduler.add_chunk(ramp_chunk(), 0.0, 0.0)
    assert scheduler.add_chunk(ramp_chunk(start=100), t_obs=0.0, t_ready=10 * DT) == 0
    stats = scheduler.stats()
    assert stats["chunks_late"] == 1 and stats["chunks_used"] == 1
    assert stats["actions_skipped"] == 4


def test_tick_jitter_skips_at_most_the_overdue_action():
    scheduler = make(n_act=10)
    scheduler.add_chunk(ramp_chunk(), 0.0, 0.0)
    assert scheduler.next_command(0.0)[1][0] == 0
    # A tick 1.7 periods late executes the action due now; the one it missed is skipped.
    time, action = scheduler.next_command(2.0 * DT + 0.7 * DT)
    assert action[0] == 3 and scheduler.stats()["actions_skipped"] == 2


def test_prefetch_starts_when_threshold_actions_remain():
    scheduler = make(n_act=6, prefetch_threshold=2)
    scheduler.add_chunk(ramp_chunk(), 0.0, 0.0)
    assert not due(scheduler, 0.0)
    assert scheduler.time_until_inference(0.0) == pytest.approx(3.5 * DT)
    for k in range(4):
        assert not due(scheduler, k * DT)
        scheduler.next_command(k * DT)
    assert due(scheduler, 4 * DT)  # two actions left
    assert scheduler.time_until_inference(4 * DT) == 0.0


def test_next_chunk_replaces_the_plan_from_the_next_tick_without_gaps():
    scheduler = make(n_act=8, prefetch_threshold=3)
    scheduler.add_chunk(np.zeros((10, 1)), 0.0, 0.0)
    values = [scheduler.next_command(k * DT)[1][0] for k in range(5)]
    assert due(scheduler, 5 * DT)  # actions 5, 6, 7 left
    values += [scheduler.next_command(k * DT)[1][0] for k in (5, 6)]
    # Observed at tick 5, ready 1.5 ticks later: its actions for ticks 5 and 6 passed, and
    # its next 8 run from tick 7.
    assert scheduler.add_chunk(np.ones((10, 1)), t_obs=5 * DT, t_ready=6.5 * DT) == 8
    values += [scheduler.next_command(k * DT)[1][0] for k in range(7, 15)]
    assert values == [0] * 7 + [1] * 8
    assert scheduler.next_command(15 * DT) is None
    stats = scheduler.stats()
    assert stats["actions_skipped"] == 2 and stats["actions_superseded"] == 1
    assert stats["idle_ticks"] == 1


def test_linear_blending_crossfades_the_seam():
    scheduler = make(n_act=6, prefetch_threshold=3, blending="linear", blend_steps=4)
    scheduler.add_chunk(np.zeros((10, 1)), 0.0, 0.0)
    for k in range(3):
        scheduler.next_command(k * DT)
    scheduler.add_chunk(np.ones((10, 1)), t_obs=3 * DT, t_ready=3 * DT)
    values = [scheduler.next_command(k * DT)[1][0] for k in range(3, 9)]
    assert values == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])


def test_blending_reference_includes_the_unexecuted_tail_of_the_previous_chunk():
    scheduler = make(n_act=2, prefetch_threshold=0, blending="linear", blend_steps=1)
    scheduler.add_chunk(ramp_chunk(dims=1), 0.0, 0.0)  # executes 0, 1; its tail goes on 2, 3...
    scheduler.next_command(0.0)
    scheduler.next_command(DT)
    scheduler.add_chunk(np.full((10, 1), 10.0), t_obs=2 * DT, t_ready=2 * DT)
    assert scheduler.next_command(2 * DT)[1][0] == pytest.approx(0.5 * 10 + 0.5 * 2)


def test_blending_after_a_gap_starts_from_the_held_last_command():
    scheduler = make(n_act=2, prefetch_threshold=0, blending="linear", blend_steps=1)
    scheduler.add_chunk(np.full((2, 1), 4.0), 0.0, 0.0)
    scheduler.next_command(0.0)
    scheduler.next_command(DT)
    scheduler.add_chunk(np.zeros((4, 1)), t_obs=10 * DT, t_ready=10 * DT)
    assert scheduler.next_command(10 * DT)[1][0] == pytest.approx(2.0)


def test_blend_weights_rise_inside_zero_one():
    for mode in ("linear", "exponential"):
        weights = blend_weights(mode, 6, 3.0)
        assert np.all(np.diff(weights) > 0) and 0 < weights[0] and weights[-1] < 1
    exponential = blend_weights("exponential", 6, 5.0)
    assert np.all(exponential > blend_weights("linear", 6, 5.0))
    np.testing.assert_allclose(blend_weights("exponential", 6, 1e-6),
                               blend_weights("linear", 6, 0.0), atol=1e-6)
    with pytest.raises(ValueError):
        blend_weights("cubic", 3, 1.0)


def test_schedule_changes_apply_from_the_next_chunk():
    config = SchedulerConfig(control_rate_hz=RATE, output_mode="stream", n_act=6,
                                 prefetch_threshold=1, blending="none")
    scheduler = ActionChunkScheduler(config)
    scheduler.add_chunk(ramp_chunk(), 0.0, 0.0)
    scheduler.update_config(SchedulerConfig(control_rate_hz=RATE, n_act=2,
                                                prefetch_threshold=0, blending="none"))
    assert scheduler.settings.n_act == 6
    issued = [scheduler.next_command(k * DT) for k in range(7)]
    assert sum(c is not None for c in issued) == 6
    assert due(scheduler, 7 * DT)
    scheduler.add_chunk(ramp_chunk(), 7 * DT, 7 * DT)
    assert scheduler.settings.n_act == 2 and scheduler.settings.prefetch_threshold == 0
    issued = [scheduler.next_command(k * DT) for k in range(7, 11)]
    assert sum(c is not None for c in issued) == 2


def test_trajectory_mode_gives_n_act_points_reached_one_period_after_their_time():
    scheduler = make(output_mode="trajectory", n_act=4)
    scheduler.add_chunk(ramp_chunk(), t_obs=1.0, t_ready=1.0)
    points = scheduler.take_trajectory(1.0)
    assert [p[0] for p in points] == pytest.approx([DT * (i + 1) for i in range(4)])
    assert [p[1][0] for p in points] == [0, 1, 2, 3]
    assert scheduler.take_trajectory(1.0) == []


def test_trajectory_mode_drops_passed_points_and_spaces_the_seam():
    scheduler = make(output_mode="trajectory", n_act=6, prefetch_threshold=3)
    scheduler.add_chunk(np.zeros((10, 1)), t_obs=0.0, t_ready=2.2 * DT)
    points = scheduler.take_trajectory(2.2 * DT)
    assert [p[1][0] for p in points] == [0] * 6  # actions 2..7; 0 and 1 passed
    assert points[0][0] == pytest.approx(0.8 * DT)
    assert not due(scheduler, 4 * DT) and due(scheduler, 5 * DT)
    scheduler.add_chunk(np.ones((10, 1)), t_obs=5 * DT + 0.001, t_ready=5.4 * DT)
    points = scheduler.take_trajectory(5.4 * DT)
    times = np.array([p[0] for p in points])
    # The old point at 5 DT lies within half a period of the new first point: superseded.
    assert [p[1][0] for p in points] == [1] * 6
    assert np.all(np.diff(times) > 0) and times[0] > DT / 2
    # An old point more than half a period before the new chunk's first one is kept.
    scheduler.add_chunk(np.full((10, 1), 2.0), t_obs=7.6 * DT, t_ready=8.2 * DT)
    points = scheduler.take_trajectory(8.2 * DT)
    assert [p[1][0] for p in points] == [1] + [2] * 6
    assert points[1][0] - points[0][0] == pytest.approx(0.6 * DT - 0.001)


def test_a_late_first_action_after_an_n_act_change_still_gives_n_act_points():
    # The first trajectory after n_act changes once carried n_act - 1 points: its first action
    # was already late. The window now starts at the first action still ahead.
    scheduler = make(output_mode="trajectory", n_act=5, prefetch_threshold=0)
    scheduler.add_chunk(ramp_chunk(), t_obs=0.0, t_ready=0.0)
    assert len(scheduler.take_trajectory(0.0)) == 5
    scheduler.update_config(SchedulerConfig(control_rate_hz=RATE, output_mode="trajectory",
                                            n_act=8, prefetch_threshold=0, blending="none"))
    assert due(scheduler, 4.6 * DT)
    # Observed at 4.6 ticks, ready 0.8 ticks later: action 0 (meant for 4.6) has passed.
    scheduler.add_chunk(ramp_chunk(start=10), t_obs=4.6 * DT, t_ready=5.4 * DT)
    points = scheduler.take_trajectory(5.4 * DT)
    assert [p[1][0] for p in points] == list(range(11, 19))
    stats = scheduler.stats()
    assert stats["actions_skipped"] == 1 and stats["chunks_short"] == 0


def test_bad_chunks_raise():
    scheduler = make()
    with pytest.raises(ValueError, match="finite"):
        scheduler.add_chunk(np.array([[np.nan]]), 0.0, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        scheduler.add_chunk(np.zeros((0, 2)), 0.0, 0.0)
    scheduler.add_chunk(np.zeros((3, 2)), 0.0, 0.0)
    with pytest.raises(ValueError, match="action dims"):
        scheduler.add_chunk(np.zeros((3, 3)), 0.0, 0.0)


def test_clear_plan_keeps_the_last_command_and_reset_forgets_it():
    scheduler = make(blending="linear", blend_steps=1)
    scheduler.add_chunk(np.full((5, 1), 2.0), 0.0, 0.0)
    scheduler.next_command(0.0)
    scheduler.clear_plan()
    assert scheduler.next_command(DT) is None and scheduler.stats()["actions_dropped"] == 4
    scheduler.add_chunk(np.zeros((5, 1)), 2 * DT, 2 * DT)
    assert scheduler.next_command(2 * DT)[1][0] == pytest.approx(1.0)  # fades from the held 2
    scheduler.reset()
    scheduler.add_chunk(np.zeros((5, 1)), 4 * DT, 4 * DT)
    assert scheduler.next_command(4 * DT)[1][0] == 0.0  # nothing left to blend from


# ------------------------------------------------------------------------ property tests

@st.composite
def runs(draw, keep_up):
    """A stream-mode run: schedule, tick phase, and per-inference latency, age and n_act."""
    threshold = draw(st.integers(0, 6))
    count = draw(st.integers(1, 8))
    if keep_up:
        # The inference thread polls at ticks (late by up to the jitter): keeping up means a
        # chunk is ready a tick before the plan runs out.
        threshold = max(threshold, 1)
        latencies = draw(st.lists(st.floats(0.0, threshold - 1.0), min_size=count,
                                  max_size=count))
        ages = draw(st.lists(st.floats(0.0, 1.5), min_size=count, max_size=count))
        n_acts = [draw(st.integers(threshold + 3 + math.ceil(lat + age), 40))
                  for lat, age in zip(latencies, ages)]
    else:
        latencies = draw(st.lists(st.floats(0.0, 30.0), min_size=count, max_size=count))
        ages = draw(st.lists(st.floats(0.0, 5.0), min_size=count, max_size=count))
        n_acts = draw(st.lists(st.integers(1, 40), min_size=count, max_size=count))
    return {
        "threshold": threshold, "latencies": latencies, "ages": ages, "n_acts": n_acts,
        "blending": draw(st.sampled_from(["none", "linear", "exponential"])),
        "phase": draw(st.floats(0.0, 0.999)), "horizon": draw(st.integers(40, 50)),
        "jitter": draw(st.floats(0.0, 0.45)),
    }


def simulate(run, ticks=160):
    """Control ticks late by up to ``jitter`` periods; inference is polled at every tick."""
    config = SchedulerConfig(control_rate_hz=RATE, output_mode="stream",
                                 n_act=run["n_acts"][0], prefetch_threshold=run["threshold"],
                                 blending=run["blending"], blend_steps=4)
    scheduler = ActionChunkScheduler(config)
    rng = np.random.default_rng(0)
    inference = 0
    in_flight = None  # (t_obs, t_ready)
    issued = []  # (tick time, command time or None)
    for k in range(ticks):
        now = (run["phase"] + k + rng.uniform(0.0, run["jitter"])) * DT
        if in_flight is not None and in_flight[1] <= now:
            scheduler.add_chunk(rng.normal(size=(run["horizon"], 3)), *in_flight)
            in_flight = None
        if in_flight is None and due(scheduler, now):
            i = inference % len(run["latencies"])
            scheduler.update_config(SchedulerConfig(
                control_rate_hz=RATE, n_act=run["n_acts"][i],
                prefetch_threshold=run["threshold"], blending=run["blending"], blend_steps=4))
            in_flight = (now - run["ages"][i] * DT, now + run["latencies"][i] * DT)
            inference += 1
        command = scheduler.next_command(now)
        issued.append((now, None if command is None else command[0]))
    return issued, scheduler.stats()


@settings(max_examples=60, deadline=None)
@given(runs(keep_up=False))
def test_commands_are_strictly_increasing_and_never_from_the_past(run):
    issued, _ = simulate(run)
    times = [t for _, t in issued if t is not None]
    assert all(b > a for a, b in zip(times, times[1:]))
    for now, time in issued:
        if time is not None:
            assert now - DT / 2 - 1e-9 <= time <= now + DT / 2 + 1e-9


@settings(max_examples=60, deadline=None)
@given(runs(keep_up=True))
def test_no_idle_tick_and_no_gap_when_inference_keeps_up(run):
    issued, stats = simulate(run)
    first = next(i for i, (_, t) in enumerate(issued) if t is not None)
    times = [t for _, t in issued[first:]]
    assert None not in times, f"idle tick at {times.index(None)} after the first command"
    assert all(0.5 * DT < b - a < 1.5 * DT for a, b in zip(times, times[1:]))
    assert stats["idle_ticks"] == 0 and stats["chunks_late"] == 0


@settings(max_examples=40, deadline=None)
@given(latency=st.floats(0.0, 3.0), age=st.floats(0.0, 1.0), steps=st.integers(1, 8),
       phase=st.floats(0.0, 0.999))
def test_linear_blending_leaves_no_jump_at_the_seam(latency, age, steps, phase):
    scheduler = make(n_act=12, prefetch_threshold=5, blending="linear", blend_steps=steps)
    scheduler.add_chunk(np.zeros((20, 1)), 0.0, 0.0)
    values, start = [], None
    for k in range(30):
        now = (k + phase) * DT
        if start is None and due(scheduler, now):
            start = now
        if start is not None and now >= start + latency * DT and scheduler.stats()[
                "chunks_received"] == 1:
            scheduler.add_chunk(np.ones((20, 1)), start - age * DT, start + latency * DT)
        command = scheduler.next_command(now)
        if command is not None:
            values.append(command[1][0])
    steps_taken = np.diff(values)
    assert np.all(steps_taken >= -1e-12)
    assert np.max(steps_taken) <= 1.0 / (steps + 1) + 1e-9
    assert values[-1] >= steps / (steps + 1) - 1e-9


@settings(max_examples=40, deadline=None)
@given(run=runs(keep_up=False), poll=st.floats(0.1, 1.0))
def test_trajectories_are_increasing_and_ahead_of_now(run, poll):
    config = SchedulerConfig(control_rate_hz=RATE, output_mode="trajectory",
                                 n_act=run["n_acts"][0], prefetch_threshold=run["threshold"],
                                 blending=run["blending"])
    scheduler = ActionChunkScheduler(config)
    now = 0.0
    for i, (latency, age) in enumerate(zip(run["latencies"], run["ages"])):
        while not due(scheduler, now):
            now += poll * DT
        ready = now + latency * DT
        scheduler.add_chunk(np.full((run["horizon"], 2), float(i)), now - age * DT, ready)
        now = ready
        points = scheduler.take_trajectory(now)
        times = [p[0] for p in points]
        assert all(t > DT / 2 - 1e-9 for t in times)
        assert all(b > a for a, b in zip(times, times[1:]))
