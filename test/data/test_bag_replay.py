# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS-free part of the bag player: topic selection, remaps, timing schedule, waiting."""

import numpy as np
import pytest
from bag_fixtures import write_demo_bag

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.bag_replay import (
    BagPlayback,
    BagPlaybackError,
    BagPlayerConfig,
    ReplayTimeline,
    parse_remaps,
    replay_due_s,
    sleep_until,
)


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory):
    return write_demo_bag(tmp_path_factory.mktemp("bags") / "demo", n_steps=20, rate_hz=20.0,
                          camera_hz=10.0, state_hz=20.0, image_size=(8, 8))


def _played(config):
    return list(BagPlayback(config).messages())


def test_messages_come_in_bag_time_order_at_their_recorded_offsets(demo_bag):
    played = _played(BagPlayerConfig(bag=str(demo_bag.path)))
    stamps = [m.bag_time_ns for _, m in played]
    assert stamps == sorted(stamps)
    expected = sum(len(t.receive_ns) for t in demo_bag.topics.values())
    assert len(played) == expected
    first = stamps[0]
    np.testing.assert_allclose([due for due, _ in played], (np.array(stamps) - first) / 1e9)
    state = [m for _, m in played if m.topic == demo_bag.state_topic]
    recorded = demo_bag.topics[demo_bag.state_topic].receive_ns
    assert [m.bag_time_ns for m in state] == recorded.tolist()
    assert all(m.msgtype == "sensor_msgs/msg/JointState" for m in state)
    assert all(m.data[:4] in (b"\x00\x01\x00\x00", b"\x00\x00\x00\x00") for m in state)


def test_rate_factor_two_halves_every_due_time(demo_bag):
    normal = _played(BagPlayerConfig(bag=str(demo_bag.path)))
    fast = _played(BagPlayerConfig(bag=str(demo_bag.path), rate=2.0))
    np.testing.assert_allclose([d for d, _ in fast], [d / 2 for d, _ in normal])
    playback = BagPlayback(BagPlayerConfig(bag=str(demo_bag.path), rate=2.0))
    assert playback.play_duration_s == pytest.approx(playback.duration_s / 2)


def test_topic_selection_remap_and_start_offset(demo_bag):
    config = BagPlayerConfig(bag=str(demo_bag.path), topics=(demo_bag.state_topic,),
                             remap=(f"{demo_bag.state_topic}:=/replayed/joint_states",),
                             start_offset_s=0.5)
    playback = BagPlayback(config)
    assert [(t.bag_topic, t.topic) for t in playback.topics] == [
        (demo_bag.state_topic, "/replayed/joint_states")]
    played = list(playback.messages())
    receive = demo_bag.topics[demo_bag.state_topic].receive_ns
    kept = receive[receive >= receive.min() + 500_000_000 - 2_000_000]
    assert {m.topic for _, m in played} == {"/replayed/joint_states"}
    assert len(played) == len(kept)
    assert played[0][0] >= 0.0


def test_unknown_topic_and_bad_inputs_are_refused_with_clear_errors(demo_bag, tmp_path):
    with pytest.raises(BagPlaybackError, match=r"\['/nope'\] not in the recording"):
        BagPlayback(BagPlayerConfig(bag=str(demo_bag.path), topics=("/nope",)))
    with pytest.raises(BagPlaybackError, match="no such file"):
        BagPlayback(BagPlayerConfig(bag=str(tmp_path / "missing")))
    with pytest.raises(BagPlaybackError, match="not a rosbag2 directory"):
        BagPlayback(BagPlayerConfig(bag=str(tmp_path)))
    with pytest.raises(BagPlaybackError, match="empty"):
        BagPlayback(BagPlayerConfig())
    with pytest.raises(BagPlaybackError, match="past the end"):
        BagPlayback(BagPlayerConfig(bag=str(demo_bag.path), start_offset_s=100.0))
    with pytest.raises(BagPlaybackError, match="not played"):
        BagPlayback(BagPlayerConfig(bag=str(demo_bag.path), topics=(demo_bag.state_topic,),
                                    remap=("/task:=/x",)))


def test_remap_entries_are_parsed_and_checked():
    assert parse_remaps(["/a:=/b", " c := d "]) == {"/a": "/b", "c": "d"}
    for bad in (["/a=/b"], [":=/b"], ["/a:=/b", "/a:=/c"]):
        with pytest.raises(ConfigError):
            parse_remaps(bad)
    with pytest.raises(ConfigError, match="from:=to"):
        BagPlayerConfig(bag="x", remap=("nonsense",))
    with pytest.raises(ConfigError, match="rate"):
        BagPlayerConfig(bag="x", rate=0.0)


def test_timeline_maps_wall_time_to_bag_time():
    timeline = ReplayTimeline(wall_start_s=100.0, first_ns=5_000_000_000, rate=2.0)
    assert timeline.bag_time_ns(101.0) == 7_000_000_000
    assert timeline.wall_due_s(replay_due_s(7_000_000_000, 5_000_000_000, 2.0)) == 101.0


def test_sleep_until_ticks_evenly_and_stops_at_the_deadline():
    clock = {"t": 0.0}
    ticks = []

    def sleep(seconds):
        clock["t"] += seconds

    next_tick = sleep_until(0.1, now=lambda: clock["t"], sleep=sleep, tick_period_s=0.025,
                            on_tick=ticks.append)
    assert clock["t"] == pytest.approx(0.1)
    np.testing.assert_allclose(ticks, np.arange(5) * 0.025)
    sleep_until(0.15, now=lambda: clock["t"], sleep=sleep, tick_period_s=0.025,
                on_tick=ticks.append, next_tick_s=next_tick)
    np.testing.assert_allclose(ticks, np.arange(7) * 0.025)
    stop_at = {"t": 0.2}
    sleep_until(10.0, now=lambda: clock["t"], sleep=sleep,
                stopped=lambda: clock["t"] >= stop_at["t"])
    assert clock["t"] < 0.3
