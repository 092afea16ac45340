# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Resampling on the control grid (latest at or before, tolerance) and cutting episodes."""

import logging

import numpy as np
import pytest
from bag_fixtures import (
    IMAGE,
    JOINT_STATE,
    START_NS,
    demo_image,
    image_message,
    joint_state_message,
    write_bag,
    write_demo_bag,
)

from snapflow_ros.data.alignment import EpisodeError, latest_at_or_before, time_grid
from snapflow_ros.data.episodes import load_episodes

MS = 1_000_000


def _latest(stamps, t):
    """Brute-force reference: index of the last stamp <= t, or -1."""
    before = [i for i, s in enumerate(stamps) if s <= t]
    return before[-1] if before else -1


def test_latest_at_or_before_includes_equal_stamps_and_reports_age():
    stamps = np.array([10, 20, 30], dtype=np.int64)
    index, age = latest_at_or_before(stamps, np.array([5, 10, 19, 20, 45], dtype=np.int64))
    assert index.tolist() == [-1, 0, 0, 1, 2]
    assert age[1:].tolist() == [0, 9, 0, 15]
    assert age[0] > 10**18  # no message yet: never fresh


def test_time_grid_steps_by_the_period_and_excludes_the_end():
    assert time_grid(100, 160, 20).tolist() == [100, 120, 140]
    assert time_grid(100, 161, 20).tolist() == [100, 120, 140, 160]
    assert time_grid(100, 100, 20).size == 0


def test_each_sample_takes_the_latest_message_at_or_before_its_time(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=40)
    (episode,), summary = load_episodes([bag.path], bag.config(), progress=False)
    camera, state, action = (bag.topics[t] for t in (bag.camera_topics[0], "/joint_states",
                                                      "/leader/joint_states"))
    assert episode.timestamps_ns[0] == START_NS
    assert np.all(np.diff(episode.timestamps_ns) == 20 * MS)
    assert len(episode) == 40 and summary.samples == 40 and not summary.dropped
    for k, t in enumerate(episode.timestamps_ns):
        frame = _latest(camera.header_ns, t)
        np.testing.assert_array_equal(episode.images["top"][k], camera.values[frame])
        np.testing.assert_allclose(episode.state[k], state.values[_latest(state.header_ns, t)],
                                   rtol=1e-6)
        np.testing.assert_allclose(episode.action[k],
                                   action.values[_latest(action.header_ns, t)], rtol=1e-6)
    # 30 Hz camera on a 50 Hz grid: frames repeat, none is skipped.
    assert np.unique(episode.images["top"][:, 0, 0, 0]).tolist() == list(range(24))


def test_time_source_receive_uses_bag_times_and_sees_camera_latency(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=40, camera_latency_s=0.045)
    camera = bag.topics[bag.camera_topics[0]]
    (by_header,), _ = load_episodes([bag.path], bag.config(), progress=False)
    (by_receive,), _ = load_episodes([bag.path], bag.config(time_source="receive"),
                                     progress=False)
    assert by_receive.timestamps_ns[0] == START_NS + 45 * MS  # the last stream to start
    expected = [camera.values[_latest(camera.receive_ns, t)][0, 0, 0]
                for t in by_receive.timestamps_ns]
    assert by_receive.images["top"][:, 0, 0, 0].tolist() == expected
    # On receive times the 45 ms late camera shows older frames than its header stamps say.
    by_stamp = [camera.values[_latest(camera.header_ns, t)][0, 0, 0]
                for t in by_receive.timestamps_ns]
    lag = np.array(by_stamp, dtype=int) - np.array(expected, dtype=int)
    assert lag.min() >= 0 and lag.max() == 2
    assert by_header.timestamps_ns[0] == START_NS


def test_samples_with_stale_inputs_are_dropped_and_counted_per_topic(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=40, camera_gaps=[(0.3, 0.5)])
    config = bag.config(tolerance_s=0.05)
    (episode,), summary = load_episodes([bag.path], config, progress=False)
    camera = bag.topics[bag.camera_topics[0]].header_ns
    grid = START_NS + np.arange(40) * 20 * MS
    stale = [t for t in grid if t - camera[_latest(camera, t)] > 50 * MS]
    assert len(stale) == 9  # 0.32 .. 0.48 s: the last frame before the gap is at 0.267 s
    assert summary.dropped == {"stale input": len(stale)}
    assert summary.stale_by_topic == {bag.camera_topics[0]: len(stale)}
    assert len(episode) == 40 - len(stale) == summary.samples
    assert not set(stale) & set(episode.timestamps_ns.tolist())
    assert "stale input: 9" in summary.format()


def test_rate_hz_sets_the_grid(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=40)  # 0.8 s
    (episode,), _ = load_episodes([bag.path], bag.config(rate_hz=25.0), progress=False)
    assert np.all(np.diff(episode.timestamps_ns) == 40 * MS)
    assert len(episode) == 20


def test_bool_marker_cuts_episodes_where_it_is_true(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=50, marker=[
        (0.1, True), (0.4, False), (0.6, True), (0.9, False)])
    episodes, summary = load_episodes(
        [bag.path], bag.config(episode_marker_topic="/episode_marker"), progress=False)
    assert [e.segment for e in episodes] == [0, 1] and summary.episodes == 2
    marks = bag.topics["/episode_marker"].receive_ns
    for episode, (start, end) in zip(episodes, [(marks[0], marks[1]), (marks[2], marks[3])]):
        assert episode.timestamps_ns[0] == start  # streams are fresh at the marker instant
        assert episode.timestamps_ns[-1] < end <= episode.timestamps_ns[-1] + 20 * MS
    assert episodes[1].name == "demo#1"


def test_string_marker_start_stop_and_restart(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=50, marker=[
        (0.1, "start"), (0.4, " STOP "), (0.6, "start"), (0.8, "start")])
    episodes, _ = load_episodes(
        [bag.path], bag.config(episode_marker_topic="/episode_marker"), progress=False)
    assert len(episodes) == 3
    starts = [e.timestamps_ns[0] for e in episodes]
    assert starts == bag.topics["/episode_marker"].receive_ns[[0, 2, 3]].tolist()
    assert episodes[2].timestamps_ns[-1] <= START_NS + 990 * MS  # runs to the end of the bag


def test_unknown_string_marker_value_names_bag_topic_and_value(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=20, marker=[(0.1, "go")])
    with pytest.raises(EpisodeError, match="'go'") as info:
        load_episodes([bag.path], bag.config(episode_marker_topic="/episode_marker"),
                      progress=False)
    assert str(bag.path) in str(info.value) and info.value.topic == "/episode_marker"


def test_time_gaps_split_episodes_when_asked(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=50, gaps=[(0.3, 0.6)])
    episodes, summary = load_episodes([bag.path], bag.config(split_on_gap_s=0.2),
                                      progress=False)
    assert len(episodes) == 2 and not summary.dropped
    # The first episode ends with the last message before the gap (state at 0.29 s).
    assert episodes[0].timestamps_ns[-1] == START_NS + 280 * MS and len(episodes[0]) == 15
    assert episodes[1].timestamps_ns[0] == START_NS + 600 * MS and len(episodes[1]) == 20
    # Without splitting the gap stays inside one episode and its stale samples are dropped.
    (whole,), summary = load_episodes([bag.path], bag.config(tolerance_s=0.05),
                                      progress=False)
    grid = START_NS + np.arange(50) * 20 * MS
    fresh = [t for t in grid if all(
        t - topic.header_ns[_latest(topic.header_ns, t)] <= 50 * MS
        for topic in (bag.topics[n] for n in (*bag.camera_topics, "/joint_states",
                                              "/leader/joint_states")))]
    assert whole.timestamps_ns.tolist() == fresh
    assert summary.dropped == {"stale input": 50 - len(fresh)} and len(fresh) == 36


def test_short_episodes_are_skipped_with_a_warning_naming_the_bag(tmp_path, caplog):
    bag = write_demo_bag(tmp_path / "demo", n_steps=50, marker=[
        (0.0, True), (0.1, False), (0.2, True)])
    config = bag.config(episode_marker_topic="/episode_marker", min_episode_steps=10)
    with caplog.at_level(logging.WARNING, logger="snapflow_ros.data"):
        episodes, summary = load_episodes([bag.path], config, progress=False)
    assert len(episodes) == 1 and episodes[0].segment == 1
    assert summary.dropped == {"short episode": 5}
    assert any(str(bag.path) in r.getMessage() and "short episode" in r.getMessage()
               for r in caplog.records)
    assert "short episode" in summary.format()


def test_no_usable_episode_raises_naming_the_bag(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=8)
    with pytest.raises(EpisodeError, match="no usable episode") as info:
        load_episodes([bag.path], bag.config(min_episode_steps=20), progress=False)
    assert str(bag.path) in str(info.value)


def test_a_topic_without_messages_makes_an_empty_episode_that_is_skipped(tmp_path, caplog):
    good = write_demo_bag(tmp_path / "good", n_steps=10)
    state = [("/joint_states", JOINT_STATE, START_NS + i * 10 * MS,
              joint_state_message(good.joint_names, [0.0, 0.0, 0.0], START_NS + i * 10 * MS))
             for i in range(20)]
    empty = write_bag(tmp_path / "empty_camera", state, empty_topics=[
        (good.camera_topics[0], IMAGE), ("/leader/joint_states", JOINT_STATE),
        ("/task", "std_msgs/msg/String")])
    with caplog.at_level(logging.WARNING, logger="snapflow_ros.data"):
        episodes, summary = load_episodes([good.path, empty], good.config(), progress=False)
    assert len(episodes) == 1 and summary.bags == 2
    assert any(str(empty) in r.getMessage() and "no messages" in r.getMessage()
               for r in caplog.records)


def test_streams_starting_late_start_the_episode_late(tmp_path):
    # The camera starts 100 ms after the joint states: the first sample waits for it.
    messages = [("/joint_states", JOINT_STATE, START_NS + i * 10 * MS,
                 joint_state_message(["a"], [i], START_NS + i * 10 * MS)) for i in range(50)]
    messages += [("/cam/image_raw", IMAGE, START_NS + (100 + i * 33) * MS,
                  image_message(demo_image(i, (8, 8)), "rgb8", START_NS + (100 + i * 33) * MS))
                 for i in range(12)]
    bag = write_bag(tmp_path / "late", messages)
    from snapflow_ros.data.config import BagTopicsConfig

    config = BagTopicsConfig(camera_topics=("/cam/image_raw",), action_topic="/joint_states",
                             action_type="joint_state", image_height=8, image_width=8,
                             min_episode_steps=1)
    (episode,), summary = load_episodes([bag], config, progress=False)
    assert episode.timestamps_ns[0] == START_NS + 100 * MS
    assert episode.state[0].tolist() == [10.0] and not summary.dropped


def test_a_marker_that_never_starts_an_episode_is_reported(tmp_path, caplog):
    good = write_demo_bag(tmp_path / "good", n_steps=20, marker=[(0.0, True)])
    idle = write_demo_bag(tmp_path / "idle", n_steps=20, marker=[(0.1, False)])
    config = good.config(episode_marker_topic="/episode_marker")
    with caplog.at_level(logging.WARNING, logger="snapflow_ros.data"):
        episodes, summary = load_episodes([good.path, idle.path], config, progress=False)
    assert [e.source for e in episodes] == [good.path]
    assert any(str(idle.path) in w and "/episode_marker" in w for w in summary.skipped_episodes)
