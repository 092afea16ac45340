# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bags info`` on recordings as ``ros2 bag record`` makes them; training on them."""

import json

import pytest
from bag_fixtures import RECORDED_STATE_ORDER, write_recorded_bag

from snapflow_ros import cli
from snapflow_ros.policies.checkpoint import checkpoint_robot

TINY = ["--set", "chunk_size=4", "--set", "cnn_channels=[4,8]", "--set", "hidden_dim=16",
        "--set", "num_layers=1", "--set", "num_heads=2", "--set", "num_keypoints=2",
        "--set", "time_encoding_dim=8", "--set", "target_time_hidden_dim=8",
        "--set", "data.image_height=16", "--set", "data.image_width=16",
        "--set", "val_every=0", "--set", "val_num_steps=[1]", "--set", "eval_num_samples=8",
        "--set", "warmup_steps=0", "--batch-size", "4", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A folder of two teleoperation recordings, sqlite3 and mcap, 0.8 s each."""
    root = tmp_path_factory.mktemp("recordings")
    marker = [(0.1, True), (0.3, False), (0.4, True), (0.7, False)]
    write_recorded_bag(root / "ep0", n_steps=40, marker=marker)
    write_recorded_bag(root / "ep1", storage="mcap", n_steps=40)
    return root


def _info(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["bags", "info", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_lists_each_bag_with_topics_types_counts_and_rates(recordings, capsys):
    code, out, _ = _info(capsys, recordings)
    assert code == 0
    assert f"bag:       {recordings / 'ep0'}" in out and f"bag:       {recordings / 'ep1'}" in out
    assert "storage:   sqlite3" in out and "storage:   mcap" in out
    assert "duration:  0.792 s" in out  # last compressed image received 3 ms late
    lines = out.splitlines()
    leader = next(line for line in lines if line.strip().startswith("/leader/joint_states"))
    assert leader.split() == ["/leader/joint_states", "sensor_msgs/msg/JointState", "40",
                              "msgs", "50.0", "Hz"]
    state = next(line for line in lines if line.strip().startswith("/joint_states"))
    assert state.split()[1:] == ["sensor_msgs/msg/JointState", "80", "msgs", "100.0", "Hz"]
    assert any(line.split()[:3] == ["/camera/top/image_raw/compressed",
                                    "sensor_msgs/msg/CompressedImage", "24"] for line in lines)
    assert out.count("episodes:  1 (one episode per bag)") == 2
    assert "  #0  40 steps  0.80 s  task 'pick up the cube'" in out
    assert (f"snapflow train --bags {recordings} --camera-topic /camera/top/image_raw "
            "--state-topic /joint_states --action-topic /leader/joint_states "
            "--set task_topic=/task") in out
    assert "--action-type" not in out
    assert "episode_marker_topic=T" in out  # the Bool topic is offered as a marker


def test_info_json_and_marker_splitting_with_the_train_flags(recordings, capsys):
    code, out, _ = _info(capsys, recordings / "ep0", "--json", "--set",
                         "episode_marker_topic=/episode_marker", "--set", "min_episode_steps=2")
    assert code == 0
    report = json.loads(out)
    (bag,) = report["bags"]
    assert bag["storage"] == "sqlite3" and bag["message_count"] > 0
    topics = {t["topic"]: t for t in bag["topics"]}
    assert topics["/leader/joint_states"]["msgtype"] == "sensor_msgs/msg/JointState"
    assert topics["/camera/top/image_raw"]["rate_hz"] == pytest.approx(30.0, rel=1e-3)
    assert [e["steps"] for e in bag["episodes"]] == [10, 15]
    assert report["splitting"] == "on marker topic /episode_marker"
    assert report["suggested"]["action_candidates"] == ["/leader/joint_states"]
    assert report["train_flags"][-2:] == ["--set", "episode_marker_topic=/episode_marker"]


def test_bad_paths_and_flags_are_one_message_and_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no bag")
    for argv, says in (([tmp_path / "missing"], "no such file or directory"),
                       ([tmp_path / "notes.txt"], "not a rosbag2 recording"),
                       ([tmp_path], "no rosbag2 recording in this folder")):
        code, out, err = _info(capsys, *argv)
        assert code == 2 and out == ""
        assert err.startswith("error: ") and says in err and len(err.splitlines()) == 1
    bag = write_recorded_bag(tmp_path / "rec", n_steps=5).path
    code, _, err = _info(capsys, bag, "--set", "chunk_size=4")
    assert code == 2 and "not a data setting" in err and "Traceback" not in err
    code, out, err = _info(capsys, bag, "--rate-hz", "-1")
    assert code == 2 and out == "" and "rate_hz" in err and len(err.splitlines()) == 1


def test_a_wrong_explicit_type_is_shown_and_left_out_of_the_suggestion(recordings, capsys):
    code, out, _ = _info(capsys, recordings / "ep1", "--action-type", "joint_trajectory")
    assert code == 0
    assert ("topic '/leader/joint_states': has type sensor_msgs/msg/JointState in the bag, but "
            "action_type joint_trajectory requests trajectory_msgs/msg/JointTrajectory") in out
    assert "--action-type" not in out.split("train with:")[1].splitlines()[1]


def test_train_reads_the_recordings_with_the_suggested_flags_and_no_type_flag(
        recordings, tmp_path, capsys):
    code, out, _ = _info(capsys, recordings, "--json", "--no-episodes")
    assert code == 0
    flags = json.loads(out)["train_flags"]
    run = tmp_path / "run"
    code = cli.main(["train", *flags, "--stage", "teacher", "--steps", "2", "--out", str(run),
                     *TINY])
    assert code == 0, capsys.readouterr().err
    robot = checkpoint_robot(run)
    assert tuple(robot.joint_names) == RECORDED_STATE_ORDER
    assert tuple(robot.action_names) == ("gripper", "shoulder", "elbow")


def test_train_with_a_wrong_explicit_type_fails_naming_topic_and_both_types(recordings,
                                                                            tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "--bags", str(recordings), "--camera-topic",
                     "/camera/top/image_raw", "--action-topic", "/leader/joint_states",
                     "--action-type", "float64_multi_array", "--stage", "teacher", "--steps",
                     "1", "--out", str(run), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "'/leader/joint_states'" in line and "sensor_msgs/msg/JointState" in line
    assert "float64_multi_array" in line and "std_msgs/msg/Float64MultiArray" in line
    assert "Traceback" not in err
