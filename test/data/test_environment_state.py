# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Environment state (object poses) from rosbag2 recordings to samples, stats and LeRobot.

Demonstration bags get a ``geometry_msgs/PoseArray`` (as the simulator records
``/object_poses``), a ``PoseStamped`` and a ``Float64MultiArray`` on the side; the values are
functions of time, so the resampled values can be predicted exactly.
"""

import numpy as np
import pytest
import torch
from bag_fixtures import (
    FLOAT64_MULTI_ARRAY,
    JOINT_STATE,
    START_NS,
    TYPESTORE,
    float64_multi_array_message,
    joint_state_message,
    write_demo_bag,
)
from torch.utils.data import DataLoader

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.bag_info import inspect_bag, suggest_topics, train_flags
from snapflow_ros.data.bag_reader import (
    BagError,
    MalformedMessageError,
    MessageTypeError,
    MissingTopicError,
    read_bag,
)
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.data.dataset import ChunkDataset, compute_normalization_stats, robot_interface
from snapflow_ros.data.episode_cache import EpisodeCache
from snapflow_ros.data.episodes import load_episodes
from snapflow_ros.data.lerobot_export import ENVIRONMENT_STATE_KEY, lerobot_features

POSE_ARRAY = "geometry_msgs/msg/PoseArray"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
LATENCY_NS = 2_000_000
ARRAY_TOPICS = ("/object_poses", "/mocap/cube", "/scene/extra")


# ------------------------------------------------------------------------------ messages

def _header(stamp_ns: int):
    types = TYPESTORE.types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000,
                                                 nanosec=stamp_ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id="world")


def _pose(position, quaternion):
    types = TYPESTORE.types
    return types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=position[0], y=position[1], z=position[2]),
        orientation=types["geometry_msgs/msg/Quaternion"](
            x=quaternion[0], y=quaternion[1], z=quaternion[2], w=quaternion[3]))


def pose_array_message(poses, stamp_ns: int):
    """A PoseArray of ``(position, quaternion)`` pairs."""
    return TYPESTORE.types[POSE_ARRAY](header=_header(stamp_ns),
                                       poses=[_pose(p, q) for p, q in poses])


def pose_stamped_message(position, quaternion, stamp_ns: int):
    return TYPESTORE.types[POSE_STAMPED](header=_header(stamp_ns), pose=_pose(position, quaternion))


# The cube's quaternion is written with qw < 0: it must be read back as the same rotation with
# qw >= 0. The socket's is a 90 degree turn about z.
CUBE_Q, CUBE_Q_READ = (0.0, 0.0, 0.0, -1.0), (0.0, 0.0, 0.0, 1.0)
SOCKET_Q = (0.0, 0.0, float(np.sqrt(0.5)), float(np.sqrt(0.5)))


def objects_at(t_s: float, count: int = 2):
    """Poses of ``count`` objects at time ``t_s``: the cube moves along x, the socket along y."""
    poses = [((0.1 * t_s, 0.2, 0.05), CUBE_Q), ((0.3, -0.1 * t_s, 0.0), SOCKET_Q)]
    return poses[:count]


def scene_messages(duration_s: float, *, pose_counts=None, nan_at: int | None = None):
    """``(topic, msgtype, receive_ns, message)`` tuples of the scene for ``write_demo_bag``.

    PoseArray at 50 Hz, PoseStamped at 100 Hz (header stamps), Float64MultiArray at 25 Hz
    (receive times). ``pose_counts(i)`` gives the number of poses of PoseArray message i
    (default 2); ``nan_at`` puts a NaN into that PoseArray message.
    """
    messages = []
    for i in range(int(round(duration_s * 50))):
        t = i / 50
        stamp = START_NS + round(t * 1e9)
        poses = objects_at(t, pose_counts(i) if pose_counts else 2)
        if i == nan_at:
            poses[0] = ((float("nan"), 0.0, 0.0), CUBE_Q)
        messages.append(("/object_poses", POSE_ARRAY, stamp + LATENCY_NS,
                         pose_array_message(poses, stamp)))
    for i in range(int(round(duration_s * 100))):
        t = i / 100
        stamp = START_NS + round(t * 1e9)
        messages.append(("/mocap/cube", POSE_STAMPED, stamp + LATENCY_NS,
                         pose_stamped_message((1.0 + t, 0.0, 0.0), CUBE_Q, stamp)))
    for i in range(int(round(duration_s * 25))):
        t = i / 25
        messages.append(("/scene/extra", FLOAT64_MULTI_ARRAY,
                         START_NS + round(t * 1e9) + LATENCY_NS,
                         float64_multi_array_message([100.0 * t, -t])))
    return messages


def expected_rows(grid_ns: np.ndarray, layout: str = "pose") -> np.ndarray:
    """What each grid time should read: the latest message of each topic at or before it."""
    rows = []
    for g in grid_ns:
        t = (int(g) - START_NS) / 1e9
        t50 = np.floor(t * 50 + 1e-9) / 50  # PoseArray header stamps at 50 Hz
        t100 = np.floor(t * 100 + 1e-9) / 100  # PoseStamped header stamps at 100 Hz
        t25 = np.floor((t - LATENCY_NS / 1e9) * 25 + 1e-9) / 25  # array: receive time
        row = []
        for position, quaternion in objects_at(t50):
            read_q = CUBE_Q_READ if quaternion == CUBE_Q else quaternion
            row += [*position, *read_q] if layout == "pose" else [*position]
        row += [1.0 + t100, 0.0, 0.0, *CUBE_Q_READ] if layout == "pose" else [1.0 + t100, 0, 0]
        row += [100.0 * t25, -t25]
        rows.append(row)
    return np.asarray(rows)


def scene_bag(path, n_steps: int = 20, **scene):
    return write_demo_bag(path, n_steps=n_steps,
                          extra_messages=scene_messages(n_steps / 50, **scene))


@pytest.fixture
def bag(tmp_path):
    return scene_bag(tmp_path / "bags" / "scene")


# ----------------------------------------------------------------------- reading and resampling

def test_pose_array_pose_stamped_and_float_array_are_resampled_on_the_joint_grid(bag):
    config = bag.config(environment_state_topics=list(ARRAY_TOPICS))
    (episode,), _ = load_episodes(bag.path, config, progress=False)
    assert episode.environment_state_names == (
        *(f"object_poses/{i}/{f}" for i in range(2) for f in ("x", "y", "z", "qx", "qy", "qz",
                                                              "qw")),
        "cube/x", "cube/y", "cube/z", "cube/qx", "cube/qy", "cube/qz", "cube/qw",
        "extra/0", "extra/1")
    assert episode.environment_state.dtype == np.float32
    assert episode.environment_state.shape == (len(episode), 7 * 2 + 7 + 2)
    np.testing.assert_allclose(episode.environment_state,
                               expected_rows(episode.timestamps_ns), atol=1e-6)
    # Poses stamped on the joints' clock leave the joints' grid and samples as they were.
    (plain,), _ = load_episodes(bag.path, bag.config(), progress=False)
    (poses,), _ = load_episodes(
        bag.path, bag.config(environment_state_topics=["/object_poses", "/mocap/cube"]),
        progress=False)
    np.testing.assert_array_equal(poses.timestamps_ns, plain.timestamps_ns)
    np.testing.assert_array_equal(poses.state, plain.state)
    np.testing.assert_allclose(poses.environment_state,
                               expected_rows(poses.timestamps_ns)[:, :21], atol=1e-6)
    assert plain.environment_state.shape == (len(plain), 0)


def test_position_layout_keeps_x_y_z_of_each_pose(bag):
    config = bag.config(environment_state_topics=list(ARRAY_TOPICS),
                        environment_state_layout="position")
    (episode,), _ = load_episodes(bag.path, config, progress=False)
    assert episode.environment_state_names[:4] == ("object_poses/0/x", "object_poses/0/y",
                                                   "object_poses/0/z", "object_poses/1/x")
    assert episode.environment_state.shape == (len(episode), 3 * 2 + 3 + 2)
    np.testing.assert_allclose(episode.environment_state,
                               expected_rows(episode.timestamps_ns, "position"), atol=1e-6)


def test_a_stale_pose_stream_drops_samples_like_a_stale_joint_stream(tmp_path):
    # Poses stop after 0.2 s of a 0.4 s recording: later samples are stale and dropped.
    messages = [m for m in scene_messages(0.4)
                if m[0] != "/object_poses" or m[2] < START_NS + 200_000_000]
    bag = write_demo_bag(tmp_path / "stale", n_steps=20, extra_messages=messages)
    config = bag.config(environment_state_topics=["/object_poses"], tolerance_s=0.05)
    (episode,), summary = load_episodes(bag.path, config, progress=False)
    assert summary.stale_by_topic.get("/object_poses", 0) > 0
    assert episode.timestamps_ns[-1] - START_NS < 200_000_000 + 50_000_000 + 1


def test_a_topic_of_another_type_names_file_topic_and_types(tmp_path):
    other = [("/object_poses", JOINT_STATE, START_NS + i * 20_000_000,
              joint_state_message(["a"], [0.0], START_NS + i * 20_000_000)) for i in range(5)]
    bag = write_demo_bag(tmp_path / "wrong", n_steps=5, extra_messages=other)
    with pytest.raises(MessageTypeError) as info:
        read_bag(bag.path, bag.config(environment_state_topics=["/object_poses"]))
    message = str(info.value)
    assert str(bag.path) in message and "/object_poses" in message
    assert JOINT_STATE in message and POSE_ARRAY in message


def test_a_missing_topic_is_named(bag):
    with pytest.raises(MissingTopicError, match="/no/poses"):
        read_bag(bag.path, bag.config(environment_state_topics=["/no/poses"]))


def test_a_changing_number_of_poses_is_a_malformed_message(tmp_path):
    bag = scene_bag(tmp_path / "varying", pose_counts=lambda i: 1 if i < 7 else 2)
    with pytest.raises(MalformedMessageError) as info:
        read_bag(bag.path, bag.config(environment_state_topics=["/object_poses"]))
    assert str(bag.path) in str(info.value) and "/object_poses" in str(info.value)
    assert "message 7 gives 14 values where the first gave 7" in str(info.value)


def test_an_empty_pose_array_is_a_malformed_message(tmp_path):
    bag = scene_bag(tmp_path / "empty", pose_counts=lambda i: 0)
    with pytest.raises(MalformedMessageError, match="no values"):
        read_bag(bag.path, bag.config(environment_state_topics=["/object_poses"]))


def test_a_non_finite_pose_is_left_out_and_counted_not_the_whole_bag(tmp_path):
    config_topics = {"environment_state_topics": ["/object_poses"]}
    clean = scene_bag(tmp_path / "clean" / "bag")
    bag = scene_bag(tmp_path / "nan" / "bag", nan_at=3)
    (expected,), _ = load_episodes(clean.path, clean.config(**config_topics), progress=False)
    (episode,), summary = load_episodes(bag.path, bag.config(**config_topics), progress=False)
    assert summary.non_finite_by_topic == {"/object_poses": 1}
    assert "ignored 1 message(s) with NaN / inf values on /object_poses" in summary.format()
    assert np.isfinite(episode.environment_state).all()
    assert len(episode) == len(expected)
    # The grid sample that would have read message 3 reads message 2 (20 ms older) instead.
    changed = np.nonzero(np.any(episode.environment_state != expected.environment_state,
                                axis=1))[0]
    assert changed.size >= 1
    np.testing.assert_array_equal(episode.environment_state[changed],
                                  expected.environment_state[changed - 1])


def test_a_non_finite_joint_state_never_reaches_a_sample(tmp_path):
    names = ("shoulder", "elbow", "gripper")
    clean = write_demo_bag(tmp_path / "clean" / "bag", n_steps=20)
    # A NaN reading with the stamp of each of four consecutive 100 Hz states, received just
    # after it: the later of two equal stamps is what a grid sample at that time reads.
    glitches = [("/joint_states", JOINT_STATE, int(receive) + 1,
                 joint_state_message(names, [float("nan"), 0.0, 0.0], int(stamp)))
                for stamp, receive in zip(clean.topics["/joint_states"].header_ns[10:14],
                                          clean.topics["/joint_states"].receive_ns[10:14])]
    bag = write_demo_bag(tmp_path / "nan" / "bag", n_steps=20, extra_messages=glitches)
    (episode,), summary = load_episodes(bag.path, bag.config(), progress=False)
    assert summary.non_finite_by_topic == {"/joint_states": 4}
    assert np.isfinite(episode.state).all() and np.isfinite(episode.action).all()


def test_bags_tracking_different_objects_are_refused_by_name(tmp_path):
    scene_bag(tmp_path / "bags" / "a")
    bag = scene_bag(tmp_path / "bags" / "b", pose_counts=lambda i: 1)
    with pytest.raises(BagError, match="environment_state_names .* same objects"):
        load_episodes(tmp_path / "bags", bag.config(environment_state_topics=["/object_poses"]),
                      progress=False)


@pytest.mark.parametrize("changes, words", [
    ({"environment_state_topics": ("/object_poses", "/object_poses")}, "duplicates"),
    ({"environment_state_topics": ("/joint_states",)}, "more than one stream"),
    ({"environment_state_topics": ("/a/poses", "/b/poses")}, "same name"),
    ({"environment_state_topics": ("",)}, "empty topic"),
    ({"environment_state_layout": "euler"}, "environment_state_layout"),
])
def test_invalid_environment_state_settings_are_rejected_by_name(changes, words):
    with pytest.raises(ConfigError, match=words):
        BagTopicsConfig(**changes)


# ------------------------------------------------------------------------ cache and samples

def test_the_episode_cache_restores_the_environment_state(bag, tmp_path):
    config = bag.config(environment_state_topics=list(ARRAY_TOPICS))
    (decoded,), _ = load_episodes(bag.path, config, progress=False, cache_dir=tmp_path / "c")
    (cached,), summary = load_episodes(bag.path, config, progress=False,
                                       cache_dir=tmp_path / "c")
    assert summary.cache_hits == 1
    assert cached.environment_state_names == decoded.environment_state_names
    np.testing.assert_array_equal(cached.environment_state, decoded.environment_state)
    # Another choice of topics is another cache entry, never the old arrays.
    other = bag.config(environment_state_topics=["/object_poses"])
    assert EpisodeCache(tmp_path / "c", other).entry(bag.path) != \
        EpisodeCache(tmp_path / "c", config).entry(bag.path)


def test_samples_robot_interface_and_stats_carry_the_environment_state(bag):
    config = bag.config(environment_state_topics=["/object_poses"])
    episodes, _ = load_episodes(bag.path, config, progress=False)
    dataset = ChunkDataset(episodes, chunk_size=4)
    sample = dataset[3]
    assert sample["environment_state"].dtype == torch.float32
    assert sample["environment_state"].shape == (14,)
    np.testing.assert_array_equal(sample["environment_state"].numpy(),
                                  episodes[0].environment_state[3])
    batch = next(iter(DataLoader(dataset, batch_size=5)))
    assert batch["environment_state"].shape == (5, 14)
    robot = robot_interface(episodes)
    assert robot.environment_state_names == episodes[0].environment_state_names
    stats = compute_normalization_stats(episodes)
    assert stats.environment_state_dim == 14
    np.testing.assert_allclose(stats.environment_state_mean,
                               episodes[0].environment_state.mean(axis=0), rtol=1e-5, atol=1e-6)

    plain, _ = load_episodes(bag.path, bag.config(), progress=False)
    assert "environment_state" not in ChunkDataset(plain, chunk_size=4)[0]
    assert robot_interface(plain).environment_state_names == ()
    assert compute_normalization_stats(plain).environment_state_dim == 0


# ------------------------------------------------------------------------- LeRobot export

def test_lerobot_export_writes_observation_environment_state(bag, tmp_path, monkeypatch):
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from snapflow_ros.data.lerobot_export import export_lerobot_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    episodes, _ = load_episodes(bag.path, bag.config(environment_state_topics=["/object_poses"]),
                                progress=False)
    assert ENVIRONMENT_STATE_KEY not in lerobot_features(
        load_episodes(bag.path, bag.config(), progress=False)[0][0])
    out = export_lerobot_dataset(episodes, tmp_path / "out", "local/scene")
    dataset = LeRobotDataset("local/scene", root=out, video_backend="pyav")
    feature = dataset.features[ENVIRONMENT_STATE_KEY]
    assert feature["names"] == list(episodes[0].environment_state_names)
    assert tuple(feature["shape"]) == (14,)
    np.testing.assert_allclose(dataset[5][ENVIRONMENT_STATE_KEY].numpy(),
                               episodes[0].environment_state[5], atol=1e-6)
    stats = dataset.meta.stats[ENVIRONMENT_STATE_KEY]
    np.testing.assert_allclose(np.asarray(stats["mean"]),
                               episodes[0].environment_state.mean(axis=0), atol=1e-5)


# ------------------------------------------------------------------------------- bags info

def test_bags_info_suggests_the_pose_topics_and_names_spare_arrays(bag):
    suggestion = suggest_topics([inspect_bag(bag.path)])
    assert suggestion.environment_state_candidates == ["/mocap/cube", "/object_poses",
                                                       "/scene/extra"]
    assert suggestion.environment_state_topics == ["/mocap/cube", "/object_poses"]
    flags, notes = train_flags({}, suggestion, [bag.path])
    at = flags.index("--environment-state-topics")
    assert flags[at + 1: at + 3] == ["/mocap/cube", "/object_poses"]
    assert any("/scene/extra" in n and "--environment-state-topics" in n for n in notes)
    # Topics the user gave win over the suggestion.
    flags, _ = train_flags({"environment_state_topics": ["/object_poses"]}, suggestion,
                           [bag.path])
    assert flags.count("/object_poses") == 1 and "/mocap/cube" not in flags


def test_a_float_array_action_is_not_offered_as_environment_state(tmp_path):
    bag = write_demo_bag(tmp_path / "array_action", n_steps=5,
                         action_topic="/arm/command", action_type="float64_multi_array")
    suggestion = suggest_topics([inspect_bag(bag.path)])
    flags, notes = train_flags({}, suggestion, [bag.path])
    assert "--environment-state-topics" not in flags
    assert not any("environment" in n for n in notes)


# ------------------------------------------------------------------------ end to end (CLI)

TINY_TRAIN = ["--set", "chunk_size=4", "--set", "cnn_channels=[4,8]", "--set", "hidden_dim=16",
              "--set", "num_layers=1", "--set", "num_heads=2", "--set", "num_keypoints=2",
              "--set", "time_encoding_dim=8", "--set", "target_time_hidden_dim=8",
              "--set", "data.image_height=16", "--set", "data.image_width=16",
              "--set", "val_every=0", "--set", "val_num_steps=[1]",
              "--set", "eval_num_samples=8", "--set", "warmup_steps=0", "--batch-size", "4",
              "--device", "cpu", "--no-progress"]


def test_snapflow_train_with_environment_state_topics_records_their_names(tmp_path, capsys):
    from snapflow_ros import cli
    from snapflow_ros.policies.checkpoint import read_checkpoint_info

    for index in range(2):
        scene_bag(tmp_path / "bags" / f"ep{index}")
    topics = ["--bags", str(tmp_path / "bags"), "--camera-topic", "/camera/top/image_raw",
              "--action-topic", "/leader/joint_states"]
    out = tmp_path / "run"
    code = cli.main(["train", *topics, "--environment-state-topics", "/object_poses",
                     "--stage", "teacher", "--out", str(out), "--steps", "1", *TINY_TRAIN])
    assert code == 0
    robot = read_checkpoint_info(out)["config"]["robot"]
    assert robot["environment_state_names"][:2] == ["object_poses/0/x", "object_poses/0/y"]
    assert len(robot["environment_state_names"]) == 14
    # Distilling it from bags read without the poses fails naming them and the flag.
    capsys.readouterr()
    code = cli.main(["train", *topics, "--stage", "snapflow", "--init", str(out), "--out",
                     str(tmp_path / "distilled"), "--steps", "1", *TINY_TRAIN])
    error = capsys.readouterr().err
    assert code == 2
    assert "environment_state_names" in error and "--environment-state-topics" in error
    assert not (tmp_path / "distilled").exists()
