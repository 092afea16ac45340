# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Scripted demonstrations written as rosbag2 that rosbags and ROS 2 read back."""

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from snapflow_ros.sim.aloha_env import (
    ALOHA_JOINT_NAMES,
    TASK_DESCRIPTIONS,
    object_poses_for_seed,
    poses_in_ros_order,
)
from snapflow_ros.sim.demo_recording import (
    BAG_TOPICS,
    bag_name,
    main,
    record_demonstrations,
)
from snapflow_ros.sim.scripted_expert import strategy_for_seed

STORE = get_typestore(Stores.ROS2_KILTED)


def read_bag(path):
    """{topic: [(log time ns, message)]} and {topic: msgtype} of a bag."""
    messages, types = {}, {}
    with Reader(path) as reader:
        for conn in reader.connections:
            types[conn.topic] = conn.msgtype
        for conn, stamp, raw in reader.messages():
            messages.setdefault(conn.topic, []).append(
                (stamp, STORE.deserialize_cdr(raw, conn.msgtype), bytes(raw)))
    return messages, types


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One full TransferCube demonstration recorded through the CLI."""
    out = tmp_path_factory.mktemp("demos")
    assert main(["--task", "transfer_cube", "--episodes", "1", "--seed-start", "4",
                 "--out", str(out), "--no-progress"]) == 0
    return read_bag(out / bag_name("transfer_cube", 4))


def test_bag_has_the_robot_topics_with_their_types_and_counts(recorded):
    messages, types = recorded
    assert types == BAG_TOPICS
    counts = {topic: len(items) for topic, items in messages.items()}
    assert counts == {"/camera/image_raw": 400, "/joint_states": 400, "/joint_trajectory": 400,
                      "/object_poses": 400, "/task": 1, "/episode/status": 1}


def test_stamps_are_simulated_time_from_zero_at_50_hz(recorded):
    messages, _ = recorded
    for topic in ("/camera/image_raw", "/joint_states", "/joint_trajectory", "/object_poses"):
        log_times = [t for t, _, _ in messages[topic]]
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                  for _, m, _ in messages[topic]]
        assert log_times == stamps == [i * 20_000_000 for i in range(400)], topic


def test_messages_carry_image_joints_command_task_and_status(recorded):
    messages, _ = recorded
    image = messages["/camera/image_raw"][0][1]
    assert (image.height, image.width, image.encoding, image.step) == (128, 128, "rgb8", 384)
    assert np.asarray(image.data).reshape(128, 128, 3).std() > 10
    joints = messages["/joint_states"][0][1]
    assert list(joints.name) == list(ALOHA_JOINT_NAMES) and len(joints.position) == 14
    command = messages["/joint_trajectory"][200][1]
    assert list(command.joint_names) == list(ALOHA_JOINT_NAMES) and len(command.points) == 1
    point = command.points[0]
    assert len(point.positions) == 14
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 0)
    assert messages["/task"][0][1].data == TASK_DESCRIPTIONS["transfer_cube"]
    end_time, status_msg, _ = messages["/episode/status"][0]
    status = json.loads(status_msg.data)
    assert status["seed"] == 4 and status["success"] is True and status["step"] == 400
    assert status["max_reward"] == 4.0 and end_time == 400 * 20_000_000


def test_object_poses_start_at_the_seed_pose_and_follow_the_cube(recorded):
    messages, _ = recorded
    arrays = [m for _, m, _ in messages["/object_poses"]]
    assert {m.header.frame_id for m in arrays} == {"world"}
    poses = np.array([[[p.position.x, p.position.y, p.position.z, p.orientation.x,
                        p.orientation.y, p.orientation.z, p.orientation.w] for p in m.poses]
                      for m in arrays])
    assert poses.shape == (400, 1, 7)
    np.testing.assert_allclose(poses[0], poses_in_ros_order(object_poses_for_seed(
        "transfer_cube", 4)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(poses[:, 0, 3:], axis=1), 1.0, atol=1e-6)
    # The right arm lifts the cube to the hand-over point (0, 0.5, 0.25) by step 250.
    assert poses[0, 0, 2] < 0.06 and poses[250, 0, 2] > 0.15
    assert abs(poses[250, 0, 1] - 0.5) < 0.05


def test_commands_lead_the_recorded_joint_states(recorded):
    messages, _ = recorded
    commands = np.array([m.points[0].positions for _, m, _ in messages["/joint_trajectory"]])
    states = np.array([m.position for _, m, _ in messages["/joint_states"]])
    # The state after step t tracks the command of step t better than the one of step t + 5.
    now = np.abs(states[1:, :6] - commands[:-1, :6]).mean()
    later = np.abs(states[1:-5, :6] - commands[5:-1, :6]).mean()
    assert now < later


def test_raw_messages_decode_with_ros2(recorded):
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from sensor_msgs.msg import JointState

    raw = recorded[0]["/joint_states"][10][2]
    decoded = rclpy_serialization.deserialize_message(raw, JointState)
    assert list(decoded.name) == list(ALOHA_JOINT_NAMES)


def test_failed_episodes_are_dropped_unless_kept(tmp_path):
    # 60 steps are too few for the hand-over: every episode fails.
    dropped = record_demonstrations("transfer_cube", [1], tmp_path / "a", progress=False,
                                    episode_steps=60)
    assert dropped.failed_seeds == [1] and dropped.bags == []
    assert not (tmp_path / "a" / bag_name("transfer_cube", 1)).exists()
    kept = record_demonstrations("transfer_cube", [1], tmp_path / "b", progress=False,
                                 episode_steps=60, keep_failed=True, storage="mcap")
    assert len(kept.bags) == 1
    messages, _ = read_bag(kept.bags[0])
    assert len(messages["/joint_states"]) == 60
    assert json.loads(messages["/episode/status"][0][1].data)["success"] is False


def test_existing_bags_are_not_overwritten_silently(tmp_path):
    record_demonstrations("transfer_cube", [2], tmp_path, progress=False, episode_steps=5,
                          keep_failed=True)
    with pytest.raises(FileExistsError):
        record_demonstrations("transfer_cube", [2], tmp_path, progress=False, episode_steps=5,
                              keep_failed=True)
    again = record_demonstrations("transfer_cube", [2], tmp_path, progress=False,
                                  episode_steps=5, keep_failed=True, overwrite=True)
    assert len(again.bags) == 1


def test_obstacle_demonstrations_name_their_strategy(tmp_path):
    # Seeds 0 and 4 draw different strategies; 60 steps suffice to record what was drawn.
    summary = record_demonstrations("transfer_cube_obstacle", [0, 4], tmp_path, progress=False,
                                    episode_steps=60, keep_failed=True)
    drawn = {seed: strategy_for_seed("transfer_cube_obstacle", seed) for seed in (0, 4)}
    assert set(drawn.values()) == {"front", "back"}
    assert summary.strategies == drawn
    assert json.loads(json.dumps(summary.to_dict()))["strategies"] == {"0": drawn[0],
                                                                       "4": drawn[4]}
    for seed in (0, 4):
        messages, _ = read_bag(tmp_path / bag_name("transfer_cube_obstacle", seed))
        assert json.loads(messages["/episode/status"][0][1].data)["strategy"] == drawn[seed]
        assert messages["/task"][0][1].data == TASK_DESCRIPTIONS["transfer_cube_obstacle"]
        assert {len(m.poses) for _, m, _ in messages["/object_poses"]} == {1}


def test_strategy_both_records_each_seed_once_per_way_from_the_same_scene(tmp_path):
    summary = record_demonstrations("transfer_cube_obstacle", [3], tmp_path, progress=False,
                                    episode_steps=60, keep_failed=True, strategy="both")
    assert summary.attempted == 2 and summary.strategy == "both"
    assert [(e["seed"], e["strategy"]) for e in summary.episodes] == [(3, "front"), (3, "back")]
    names = {Path(bag).name for bag in summary.bags}
    assert names == {bag_name("transfer_cube_obstacle", 3, "front"),
                     bag_name("transfer_cube_obstacle", 3, "back")}
    assert bag_name("transfer_cube_obstacle", 3) not in names
    recorded = {}
    for way in ("front", "back"):
        messages, _ = read_bag(tmp_path / bag_name("transfer_cube_obstacle", 3, way))
        assert json.loads(messages["/episode/status"][0][1].data)["strategy"] == way
        recorded[way] = (
            np.array([m.position for _, m, _ in messages["/joint_states"]]),
            np.array([[p.position.x, p.position.y, p.position.z] for _, m, _
                      in messages["/object_poses"] for p in m.poses]),
            np.array([m.points[0].positions for _, m, _ in messages["/joint_trajectory"]]),
        )
    (front_q, front_obj, front_cmd), (back_q, back_obj, back_cmd) = recorded.values()
    # Same initial scene (state and object poses at step 0), two different plans from it.
    np.testing.assert_array_equal(front_q[0], back_q[0])
    np.testing.assert_array_equal(front_obj[0], back_obj[0])
    assert np.abs(front_cmd[-1] - back_cmd[-1]).max() > 0.01


def test_forced_strategies_need_a_task_that_has_them(tmp_path, capsys):
    with pytest.raises(ValueError, match="one way only"):
        record_demonstrations("transfer_cube", [0], tmp_path, progress=False, strategy="both")
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "insertion", "--strategy", "front", "--episodes", "1",
              "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 2
    assert "--strategy" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
