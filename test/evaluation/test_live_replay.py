# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live replay results without ROS: trajectories scored on the bag timeline."""

from pathlib import Path

import numpy as np
import pytest

from snapflow_ros.data.episodes import Episode
from snapflow_ros.evaluation.live_replay import (
    LiveReplayError,
    ReceivedTrajectory,
    ReplayRecording,
    score_recordings,
)

BAG_START = 1_700_000_000_000_000_000
SYSTEM_START = 1_800_000_000_000_000_000
PERIOD = 20_000_000
NAMES = ("a", "b")


def _episode(steps=50):
    grid = BAG_START + np.arange(steps, dtype=np.int64) * PERIOD
    seconds = (grid - BAG_START) / 1e9
    action = np.stack([seconds, 1.0 - 2.0 * seconds], axis=-1).astype(np.float32)
    return Episode(images={}, state=action.copy(), action=action, timestamps_ns=grid, task="",
                   source=Path("bag0"), state_names=NAMES, action_names=NAMES, rate_hz=50.0)


def _perfect_trajectory(stamp_s, rate, names=NAMES, points=5):
    """What a perfect node would command at system time SYSTEM_START + stamp_s.

    The player played bag time BAG_START + 2 ms (the first receive time) at SYSTEM_START, and
    stamps lie 2 ms before receive times: episode time BAG_START + rate * elapsed. A point is
    the position to reach at its time: the action recorded one period (of the episode) earlier.
    """
    stamp = SYSTEM_START + int(stamp_s * 1e9)
    times = (np.arange(1, points + 1) * PERIOD).astype(np.int64)
    episode_s = (stamp + times - SYSTEM_START) * rate / 1e9 - PERIOD / 1e9
    positions = np.stack([episode_s, 1.0 - 2.0 * episode_s], axis=-1)
    order = [NAMES.index(n) for n in names]
    return ReceivedTrajectory(stamp + 3_000_000, stamp, tuple(names), times, positions[:, order])


def _recording(trajectories, header_offset_ns=-2_000_000):
    cameras = BAG_START + 2_000_000 + np.arange(30, dtype=np.int64) * 33_000_000
    return ReplayRecording(bag=Path("bag0"), system_start_ns=SYSTEM_START,
                           bag_first_ns=BAG_START + 2_000_000, header_offset_ns=header_offset_ns,
                           camera_receive_ns=cameras, camera_stamp_ns=cameras - 2_000_000,
                           trajectories=trajectories, node_latency_ms=[10.0, 20.0, 30.0])


@pytest.mark.parametrize("rate", [1.0, 2.0])
def test_a_node_that_commands_the_recording_scores_zero(rate):
    trajectories = [_perfect_trajectory(t / rate, rate) for t in (0.1, 0.3, 0.5)]
    trajectories.append(_perfect_trajectory(0.2 / rate, rate, names=("b", "a")))
    summary = score_recordings([_recording(trajectories)], {"bag0": [_episode()]}, NAMES,
                               rate)
    assert summary["mse_mean"] == pytest.approx(0.0, abs=1e-12)
    assert summary["num_trajectories"] == 4
    assert summary["latency_ms_p50"] == pytest.approx(20.0)
    assert summary["delivery_ms_p50"] == pytest.approx(3.0)
    # Cameras every 33 ms: the newest frame before a command is at most 33 ms old.
    assert 0.0 <= summary["camera_age_at_publish_ms_p95"] <= 33.0 / rate + 1e-6


def test_a_node_sending_each_action_one_step_early_is_scored_one_step_off():
    # The action of step t sent as the point to reach at t: one period too early.
    early = _perfect_trajectory(0.3, 1.0)
    early.positions = early.positions + np.array([PERIOD / 1e9, -2 * PERIOD / 1e9])
    summary = score_recordings([_recording([early])], {"bag0": [_episode()]}, NAMES, 1.0)
    # 20 ms at 1/s and -2/s: 0.02 and 0.04 off -> MSE 0.001.
    assert summary["mse_mean"] == pytest.approx(0.001, rel=1e-4)


def test_a_late_node_is_scored_against_what_was_recorded_at_its_command_times():
    late = _perfect_trajectory(0.3, 1.0)
    late.stamp_ns += 100_000_000  # the same positions, commanded 100 ms later
    summary = score_recordings([_recording([late])], {"bag0": [_episode()]}, NAMES, 1.0)
    # Joint a ramps 1/s, joint b -2/s: 0.1 s late is 0.1 and 0.2 off -> MSE 0.025.
    assert summary["mse_mean"] == pytest.approx(0.025, rel=1e-4)


def test_commands_outside_the_scored_episodes_are_left_out():
    before = _perfect_trajectory(-1.0, 1.0)
    inside = _perfect_trajectory(0.2, 1.0)
    summary = score_recordings([_recording([before, inside])], {"bag0": [_episode()]}, NAMES,
                               1.0)
    assert summary["num_trajectories"] == 1
    with pytest.raises(LiveReplayError, match="no trajectory"):
        score_recordings([_recording([before])], {"bag0": [_episode()]}, NAMES, 1.0)
    with pytest.raises(LiveReplayError, match=r"without \['b'\]"):
        wrong = _perfect_trajectory(0.2, 1.0)
        wrong.joint_names = ("a", "c")
        score_recordings([_recording([wrong])], {"bag0": [_episode()]}, NAMES, 1.0)
