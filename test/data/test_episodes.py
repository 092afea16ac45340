# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Loading episodes from many bags: summary, corrupt bags, consistency and the episode cache."""

import logging

import numpy as np
import pytest
from bag_fixtures import RECORDED_STATE_ORDER, truncate_bag, write_demo_bag, write_recorded_bag

import snapflow_ros.data.episode_cache as episode_cache
import snapflow_ros.data.episodes as episodes_module
from snapflow_ros.config_fields import config_from_dict
from snapflow_ros.data.bag_reader import BagError, CorruptBagError, MissingTopicError
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.data.episodes import load_episodes


@pytest.fixture
def recordings(tmp_path):
    """A folder with three demonstration bags in two storage formats."""
    folder = tmp_path / "recordings"
    bags = [write_demo_bag(folder / "ep0", n_steps=30),
            write_demo_bag(folder / "ep1", n_steps=20, storage="mcap", task="stack the cups"),
            write_demo_bag(folder / "ep2", n_steps=25)]
    return folder, bags


def test_a_folder_of_bags_becomes_episodes_and_a_summary(recordings):
    folder, bags = recordings
    episodes, summary = load_episodes(folder, bags[0].config(), progress=False)
    assert [e.source for e in episodes] == [b.path for b in bags]
    assert [len(e) for e in episodes] == [30, 20, 25]
    assert [e.task for e in episodes] == ["pick up the cube", "stack the cups",
                                          "pick up the cube"]
    first = episodes[0]
    assert first.images["top"].shape == (30, 24, 32, 3) and first.images["top"].dtype == np.uint8
    assert first.state.shape == (30, 3) and first.state.dtype == np.float32
    assert first.action.shape == (30, 3) and first.action.dtype == np.float32
    assert first.state_names == first.action_names == ("shoulder", "elbow", "gripper")
    assert first.timestamps_s[:3].tolist() == [0.0, 0.02, 0.04]
    assert (summary.bags, summary.episodes, summary.samples) == (3, 3, 75)
    assert summary.topic_messages["/joint_states"] == 60 + 40 + 50
    assert summary.topic_rates_hz["/joint_states"] == pytest.approx(100.0)
    assert summary.topic_rates_hz["/leader/joint_states"] == pytest.approx(50.0)
    assert summary.topic_rates_hz["/camera/top/image_raw"] == pytest.approx(30.0)
    text = summary.format()
    assert "episodes: 3, samples: 75" in text and "/camera/top/image_raw" in text
    assert "100.0 Hz" in text


def test_corrupt_bags_fail_or_are_skipped_as_configured(recordings, caplog):
    folder, bags = recordings
    truncate_bag(bags[1].path, 0.5)
    with pytest.raises(CorruptBagError) as info:
        load_episodes(folder, bags[0].config(), progress=False)
    assert str(bags[1].path) in str(info.value)
    with caplog.at_level(logging.WARNING, logger="snapflow_ros.data"):
        episodes, summary = load_episodes(folder, bags[0].config(on_corrupt_bag="skip"),
                                          progress=False)
    assert [e.source for e in episodes] == [bags[0].path, bags[2].path]
    assert [p for p, _ in summary.skipped_bags] == [bags[1].path]
    assert f"skipped bag {bags[1].path}" in summary.format()
    assert any(str(bags[1].path) in r.getMessage() for r in caplog.records)


def test_bags_with_different_joints_are_refused_naming_the_bag(tmp_path):
    a = write_demo_bag(tmp_path / "a", n_steps=10)
    b = write_demo_bag(tmp_path / "b", n_steps=10, joint_names=("shoulder", "elbow", "wrist"))
    with pytest.raises(BagError, match="joint_names") as info:
        load_episodes([a.path, b.path], a.config(), progress=False)
    assert str(b.path) in str(info.value)
    # Naming the shared joints makes them compatible.
    episodes, _ = load_episodes([a.path, b.path], a.config(joint_names=["shoulder", "elbow"]),
                                progress=False)
    assert all(e.state.shape[1] == 2 for e in episodes)


def test_cache_returns_the_same_episodes_without_reading_the_bags(recordings, tmp_path,
                                                                  monkeypatch):
    folder, bags = recordings
    cache = tmp_path / "cache"
    config = bags[0].config()
    first, summary = load_episodes(folder, config, progress=False, cache_dir=cache)
    assert summary.cache_hits == 0 and len(list(cache.iterdir())) == 3

    def no_reading(*args, **kwargs):
        raise AssertionError("bag decoded again")

    monkeypatch.setattr(episodes_module, "read_bag", no_reading)
    second, summary2 = load_episodes(folder, config, progress=False, cache_dir=cache)
    assert summary2.cache_hits == 3
    assert summary2.topic_messages == summary.topic_messages
    assert summary2.samples == summary.samples
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.images["top"], b.images["top"])
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.timestamps_ns, b.timestamps_ns)
        assert (a.task, a.source, a.state_names) == (b.task, b.source, b.state_names)


def test_cache_misses_when_the_config_or_the_bag_changes(tmp_path):
    bag = write_demo_bag(tmp_path / "bags" / "ep", n_steps=12)
    cache = tmp_path / "cache"
    load_episodes([bag.path], bag.config(), progress=False, cache_dir=cache)
    _, summary = load_episodes([bag.path], bag.config(rate_hz=25.0), progress=False,
                               cache_dir=cache)
    assert summary.cache_hits == 0
    other = write_demo_bag(tmp_path / "other" / "ep", n_steps=14)  # same name, new content
    _, summary = load_episodes([other.path], bag.config(), progress=False, cache_dir=cache)
    assert summary.cache_hits == 0 and summary.samples == 14


def test_bad_input_leaves_no_cache_entry(tmp_path):
    bag = write_demo_bag(tmp_path / "ep", n_steps=12)
    cache = tmp_path / "cache"
    with pytest.raises(MissingTopicError):
        load_episodes([bag.path], bag.config(state_topic="/robot/joint_states"),
                      progress=False, cache_dir=cache)
    assert not cache.exists() or not list(cache.iterdir())


def test_interrupted_cache_write_leaves_nothing_half_written(tmp_path, monkeypatch, caplog):
    bag = write_demo_bag(tmp_path / "ep", n_steps=12)
    cache = tmp_path / "cache"
    calls = []
    real_save = np.save

    def failing_save(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        real_save(path, array)

    monkeypatch.setattr(episode_cache.np, "save", failing_save)
    with caplog.at_level(logging.WARNING, logger="snapflow_ros.data"):
        episodes, _ = load_episodes([bag.path], bag.config(), progress=False, cache_dir=cache)
    assert len(episodes) == 1  # the cache is an optimisation: training data still loads
    assert list(cache.iterdir()) == []
    assert any("No space left" in r.getMessage() for r in caplog.records)


def test_a_broken_cache_entry_is_rebuilt(tmp_path):
    bag = write_demo_bag(tmp_path / "ep", n_steps=12)
    cache = tmp_path / "cache"
    load_episodes([bag.path], bag.config(), progress=False, cache_dir=cache)
    (entry,) = cache.iterdir()
    (entry / "e0.state.npy").write_bytes(b"garbage")
    episodes, summary = load_episodes([bag.path], bag.config(), progress=False,
                                      cache_dir=cache)
    assert summary.cache_hits == 0 and len(episodes[0]) == 12
    _, summary = load_episodes([bag.path], bag.config(), progress=False, cache_dir=cache)
    assert summary.cache_hits == 1


def test_worker_processes_give_the_same_episodes(recordings):
    folder, bags = recordings
    truncate_bag(bags[2].path, 0.5)
    config = bags[0].config(on_corrupt_bag="skip")
    serial, serial_summary = load_episodes(folder, config, progress=False)
    parallel, summary = load_episodes(folder, config, progress=False, workers=2)
    assert [e.source for e in parallel] == [e.source for e in serial] == [b.path for b in bags[:2]]
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.images["top"], b.images["top"])
        np.testing.assert_array_equal(a.action, b.action)
    assert summary.skipped_bags == serial_summary.skipped_bags


def test_bag_errors_keep_file_and_topic_across_processes():
    import pickle

    error = MissingTopicError("not in the bag", path="/data/ep7", topic="/joint_states")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MissingTopicError and str(copy) == str(error)
    assert (str(copy.path), copy.topic) == ("/data/ep7", "/joint_states")


def test_default_config_reads_the_simulator_recordings(tmp_path):
    recording = pytest.importorskip("snapflow_ros.sim.demo_recording")
    from snapflow_ros.data.config import BagTopicsConfig
    from snapflow_ros.sim.scripted_expert import Demonstration

    steps, rng = 12, np.random.default_rng(0)
    demo = Demonstration(
        task="transfer_cube", seed=0, images=rng.integers(0, 255, (steps, 16, 16, 3), np.uint8),
        qpos=rng.normal(size=(steps, 14)), qvel=rng.normal(size=(steps, 14)),
        actions=rng.normal(size=(steps, 14)), rewards=np.zeros(steps), success=True,
        first_success_step=None)
    bag = recording.write_demonstration_bag(demo, tmp_path / "sim_bag")
    config = BagTopicsConfig(task_topic="/task", image_height=16, image_width=16,
                             min_episode_steps=1)
    (episode,), _ = load_episodes([bag], config, progress=False)
    np.testing.assert_array_equal(episode.images["top"], demo.images)
    np.testing.assert_allclose(episode.state, demo.qpos, rtol=1e-6)
    np.testing.assert_allclose(episode.action, demo.actions, rtol=1e-6)
    assert episode.task and len(episode.state_names) == 14


def test_recordings_as_ros2_bag_record_makes_them_load_with_topics_only(tmp_path):
    folder = tmp_path / "recorded"
    bags = [write_recorded_bag(folder / "ep0", n_steps=20),
            write_recorded_bag(folder / "ep1", storage="mcap", n_steps=15)]
    # What `snapflow train --camera-topic ... --state-topic ... --action-topic ...` builds.
    config = config_from_dict(BagTopicsConfig, {
        "camera_topics": ["/camera/top/image_raw"], "state_topic": "/joint_states",
        "action_topic": "/leader/joint_states", "task_topic": "/task",
        "image_height": 24, "image_width": 32, "min_episode_steps": 1})
    episodes, summary = load_episodes(folder, config, progress=False)
    assert [len(e) for e in episodes] == [20, 15]
    assert all(e.state_names == RECORDED_STATE_ORDER for e in episodes)
    assert all(e.action_names == ("gripper", "shoulder", "elbow") for e in episodes)
    assert episodes[0].state.shape == (20, 4) and episodes[0].action.shape == (20, 3)
    # The action's gripper column is the leader's gripper, lined up with the state's.
    leader = bags[0].topics["/leader/joint_states"].values
    np.testing.assert_allclose(episodes[0].action[:, 0], leader[:20, 2], rtol=1e-5)
    assert summary.topic_messages["/leader/joint_states"] == 35
