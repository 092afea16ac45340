# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What is in a bag: topics with types, counts and rates, train topics, episodes as cut."""

import pytest
from bag_fixtures import (
    JOINT_STATE,
    joint_state_message,
    write_demo_bag,
    write_recorded_bag,
)

from snapflow_ros.data.bag_info import inspect_bag, split_episodes, suggest_topics, train_flags
from snapflow_ros.data.bag_reader import CorruptBagError
from snapflow_ros.data.episodes import load_episodes


@pytest.mark.parametrize("storage, expected", [("sqlite3", "sqlite3"), ("mcap", "mcap"),
                                               ("mcap_file", "mcap")])
def test_inspect_lists_storage_duration_and_each_topic(tmp_path, storage, expected):
    name = "rec.mcap" if storage == "mcap_file" else "rec"
    bag = write_recorded_bag(tmp_path / name, storage=storage, n_steps=50)  # 1 s
    info = inspect_bag(bag.path)
    assert info.storage == expected
    assert info.duration_s == pytest.approx(0.99, abs=0.02)
    topics = {t.topic: t for t in info.topics}
    assert topics["/joint_states"].msgtype == JOINT_STATE
    assert topics["/camera/top/image_raw"].msgtype == "sensor_msgs/msg/Image"
    assert topics["/camera/top/image_raw/compressed"].msgtype == \
        "sensor_msgs/msg/CompressedImage"
    assert (topics["/joint_states"].count, topics["/leader/joint_states"].count,
            topics["/camera/top/image_raw"].count) == (100, 50, 30)
    assert topics["/joint_states"].rate_hz == pytest.approx(100.0, rel=1e-3)
    assert topics["/leader/joint_states"].rate_hz == pytest.approx(50.0, rel=1e-3)
    assert topics["/camera/top/image_raw"].rate_hz == pytest.approx(30.0, rel=1e-3)
    assert topics["/task"].rate_hz == 0.0  # a single message has no rate
    assert info.message_count == sum(t.count for t in info.topics)


def test_inspect_of_a_damaged_file_is_a_corrupt_bag_error(tmp_path):
    bad = tmp_path / "broken.mcap"
    bad.write_bytes(b"not an mcap file at all")
    with pytest.raises(CorruptBagError) as info:
        inspect_bag(bad)
    assert str(bad) in str(info.value)


def test_suggestion_picks_camera_state_action_and_task_by_type(tmp_path):
    bag = write_recorded_bag(tmp_path / "rec", n_steps=10)
    suggestion = suggest_topics([inspect_bag(bag.path)])
    # The image_transport copy is the same camera; the URDF string is not a task.
    assert suggestion.camera_topics == ["/camera/top/image_raw"]
    assert suggestion.state_topic == "/joint_states"
    assert suggestion.action_topic == "/leader/joint_states"
    assert suggestion.task_topic == "/task"
    flags, notes = train_flags({}, suggestion, [bag.path])
    assert flags == ["--bags", str(bag.path), "--camera-topic", "/camera/top/image_raw",
                     "--state-topic", "/joint_states", "--action-topic",
                     "/leader/joint_states", "--set", "task_topic=/task"]
    assert notes == []


def test_several_action_candidates_are_listed_not_guessed(tmp_path):
    leader = [("/right_leader/joint_states", JOINT_STATE, 1_700_000_000_000_000_000 + i,
               joint_state_message(["a"], [0.0], 1_700_000_000_000_000_000 + i))
              for i in range(3)]
    bag = write_demo_bag(tmp_path / "two_arms", n_steps=5, extra_messages=leader)
    suggestion = suggest_topics([inspect_bag(bag.path)])
    assert suggestion.action_candidates == ["/leader/joint_states",
                                            "/right_leader/joint_states"]
    assert suggestion.action_topic is None
    flags, notes = train_flags({}, suggestion, [bag.path])
    assert "--action-topic" not in flags
    assert any("several candidates" in n and "/right_leader/joint_states" in n for n in notes)
    # A topic given by the user is kept as given.
    flags, notes = train_flags({"action_topic": "/right_leader/joint_states"}, suggestion,
                               [bag.path])
    assert flags[flags.index("--action-topic") + 1] == "/right_leader/joint_states"


def test_split_episodes_cuts_as_training_does(tmp_path):
    marker = [(0.1, True), (0.3, False), (0.4, True), (0.7, False)]
    bag = write_recorded_bag(tmp_path / "rec", n_steps=40, marker=marker)
    config = bag.config(episode_marker_topic="/episode_marker", min_episode_steps=2)
    episodes, warnings = split_episodes(bag.path, config)
    loaded, _ = load_episodes(bag.path, config, progress=False)
    assert [e.steps for e in episodes] == [len(e) for e in loaded] == [10, 15]
    assert [e.segment for e in episodes] == [0, 1]
    assert episodes[0].duration_s == pytest.approx(0.2)
    assert {e.task for e in episodes} == {"pick up the cube"}
    assert warnings == []
