# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the observation buffer: joint picking, rejections, staleness, rates, threads."""

import threading

import cv2
import numpy as np
import pytest

from snapflow_ros.runtime.image_decoding import InputRejected
from snapflow_ros.runtime.observation_buffer import (
    JOINT_STATE,
    ObservationBuffer,
    ObservationConfig,
    camera_input,
)

IMAGE = np.zeros((4, 6, 3), np.uint8)


@pytest.fixture
def buffer():
    return ObservationBuffer(("shoulder", "elbow"), ("top", "wrist"), max_input_age_s=0.5)


def fill(buffer, t=10.0, positions=(0.1, 0.2)):
    buffer.add_joint_state(["elbow", "gripper", "shoulder"], [positions[1], 9.0, positions[0]],
                           receive_time=t)
    buffer.add_image("top", IMAGE, receive_time=t)
    buffer.add_image("wrist", IMAGE, receive_time=t)


def test_joints_are_picked_by_name_in_model_order_and_extras_ignored(buffer):
    fill(buffer, positions=(0.1, 0.2))
    observation = buffer.snapshot_with_reason(10.1)[0]
    np.testing.assert_array_equal(observation.state, [0.1, 0.2])
    np.testing.assert_array_equal(observation.measured_position, [0.1, 0.2])
    assert observation.time == 10.0 and set(observation.images) == {"top", "wrist"}
    assert observation.ages[JOINT_STATE] == pytest.approx(0.1)


def test_command_joints_may_differ_from_state_joints():
    buffer = ObservationBuffer(("a",), ("top",), command_joint_names=("b", "a"))
    buffer.add_joint_state(["a", "b"], [1.0, 2.0], receive_time=0.0)
    buffer.add_image("top", IMAGE, receive_time=0.0)
    observation = buffer.snapshot_with_reason(0.0)[0]
    np.testing.assert_array_equal(observation.state, [1.0])
    np.testing.assert_array_equal(observation.measured_position, [2.0, 1.0])
    with pytest.raises(InputRejected, match="missing_joint"):
        buffer.add_joint_state(["a"], [1.0], receive_time=0.1)


@pytest.mark.parametrize("names, positions, reason", [
    (["shoulder", "elbow"], [0.0], "length_mismatch"),
    (["shoulder", "elbow", "x"], [0.0, 1.0], "length_mismatch"),
    (["shoulder", "elbow", "elbow"], [0.0, 1.0, 2.0], "duplicate_name"),
    (["shoulder"], [0.0], "missing_joint"),
    (["shoulder", "elbow"], [float("nan"), 0.0], "non_finite_position"),
    (["shoulder", "elbow"], [0.0, float("inf")], "non_finite_position"),
    (["shoulder", "elbow"], [0.0, "x"], "bad_position"),
])
def test_bad_joint_states_are_rejected_counted_and_never_stored(buffer, names, positions, reason):
    fill(buffer)
    with pytest.raises(InputRejected) as info:
        buffer.add_joint_state(names, positions, receive_time=10.2)
    assert info.value.reason == reason
    assert buffer.rejection_counts() == {JOINT_STATE: {reason: 1}}
    np.testing.assert_array_equal(buffer.snapshot_with_reason(10.3)[0].state, [0.1, 0.2])


def test_nan_in_an_unused_joint_is_ignored(buffer):
    buffer.add_joint_state(["shoulder", "elbow", "gripper"], [0.0, 1.0, float("nan")],
                           receive_time=0.0)
    assert buffer.accepted_counts()[JOINT_STATE] == 1


def test_stamps_out_of_order_or_in_the_future_are_rejected(buffer):
    names = ["shoulder", "elbow"]
    buffer.add_joint_state(names, [0, 0], receive_time=1.0, stamp=100.0, clock_now=100.0)
    with pytest.raises(InputRejected, match="stamp_out_of_order"):
        buffer.add_joint_state(names, [0, 0], receive_time=1.1, stamp=99.9, clock_now=100.1)
    with pytest.raises(InputRejected, match="stamp_in_future"):
        buffer.add_joint_state(names, [0, 0], receive_time=1.2, stamp=101.0, clock_now=100.2)
    # Within the allowed lead (clock skew between machines) and equal stamps are fine.
    buffer.add_joint_state(names, [0, 0], receive_time=1.3, stamp=100.35, clock_now=100.3)
    buffer.add_joint_state(names, [0, 0], receive_time=1.4, stamp=100.35, clock_now=100.4)
    # An unset header (stamp 0) cannot be ordered and is accepted on its receive time.
    buffer.add_joint_state(names, [0, 0], receive_time=1.5, stamp=0.0, clock_now=100.5)
    assert buffer.rejection_counts()[JOINT_STATE] == {"stamp_out_of_order": 1,
                                                      "stamp_in_future": 1}
    assert buffer.accepted_counts()[JOINT_STATE] == 4


def test_snapshot_is_none_with_a_reason_until_every_input_arrived(buffer):
    assert buffer.snapshot_with_reason(0.0)[0] is None
    buffer.add_joint_state(["shoulder", "elbow"], [0, 0], receive_time=0.0)
    buffer.add_image("top", IMAGE, receive_time=0.0)
    observation, reason = buffer.snapshot_with_reason(0.1)
    assert observation is None and "camera/wrist" in reason
    buffer.add_image("wrist", IMAGE, receive_time=0.1)
    assert buffer.snapshot_with_reason(0.2)[0] is not None


def test_snapshot_is_none_when_any_input_is_stale_and_recovers(buffer):
    fill(buffer, t=0.0)
    buffer.add_joint_state(["shoulder", "elbow"], [0, 0], receive_time=0.6)
    observation, reason = buffer.snapshot_with_reason(0.7)
    assert observation is None and "stale" in reason and "camera/top" in reason
    fill(buffer, t=0.8)
    assert buffer.snapshot_with_reason(0.9)[0] is not None
    ages = buffer.input_ages(1.0)
    assert ages[JOINT_STATE] == pytest.approx(0.2) and ages[camera_input("top")] == pytest.approx(
        0.2)


def test_input_ages_are_none_before_the_first_message(buffer):
    assert buffer.input_ages(5.0) == {JOINT_STATE: None, "camera/top": None,
                                      "camera/wrist": None}


@pytest.mark.parametrize("kwargs, reason", [
    ({"encoding": "rgb8", "height": 4, "width": 6, "step": 18, "data": bytes(10)},
     "truncated_data"),
    ({"encoding": "rgb8", "height": 0, "width": 6, "step": 18, "data": b""}, "zero_size"),
    ({"encoding": "32FC1", "height": 4, "width": 6, "step": 24, "data": bytes(96)},
     "unsupported_encoding"),
    ({"encoding": "rgb8", "height": 5, "width": 6, "step": 18, "data": bytes(90)},
     "wrong_size"),
])
def test_malformed_raw_images_are_rejected_and_counted_per_camera(kwargs, reason):
    buffer = ObservationBuffer(("a",), ("top",), expected_image_size=(4, 6))
    with pytest.raises(InputRejected) as info:
        buffer.add_raw_image("top", receive_time=0.0, **kwargs)
    assert info.value.reason == reason
    assert buffer.rejection_counts() == {"camera/top": {reason: 1}}
    assert buffer.input_ages(0.0)["camera/top"] is None


def test_raw_and_compressed_images_are_stored_as_rgb():
    buffer = ObservationBuffer(("a",), ("raw", "jpeg"))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 250
    buffer.add_raw_image("raw", "bgr8", 8, 8, 24, rgb[..., ::-1].tobytes(), receive_time=0.0)
    buffer.add_compressed_image("jpeg", "jpeg", cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes(),
                                receive_time=0.0)
    with pytest.raises(InputRejected, match="decode_failed"):
        buffer.add_compressed_image("jpeg", "jpeg", b"\xff\xd8garbage", receive_time=0.1)
    buffer.add_joint_state(["a"], [0.0], receive_time=0.0)
    observation = buffer.snapshot_with_reason(0.0)[0]
    assert observation.images["raw"][0, 0, 0] == 250
    assert observation.images["jpeg"][0, 0, 0] > 240 and observation.images["jpeg"][0, 0, 2] < 10
    assert buffer.rejection_counts() == {"camera/jpeg": {"decode_failed": 1}}


def test_unknown_camera_and_bad_arrays_are_rejected():
    buffer = ObservationBuffer(("a",), ("top",))
    with pytest.raises(InputRejected, match="unknown_camera"):
        buffer.add_image("side", IMAGE, receive_time=0.0)
    with pytest.raises(InputRejected, match="bad_image"):
        buffer.add_image("top", np.zeros((4, 6), np.uint8), receive_time=0.0)
    with pytest.raises(InputRejected, match="zero_size"):
        buffer.add_image("top", np.zeros((0, 6, 3), np.uint8), receive_time=0.0)


def test_rates_reflect_the_recent_message_rate():
    buffer = ObservationBuffer(("a",), ("top",), rate_window_s=1.0)
    for i in range(101):
        buffer.add_joint_state(["a"], [0.0], receive_time=i * 0.01)
    for i in range(31):
        buffer.add_image("top", IMAGE, receive_time=i / 30)
    rates = buffer.input_rates(1.0)
    assert rates[JOINT_STATE] == pytest.approx(100.0) and rates["camera/top"] == pytest.approx(30)
    assert buffer.input_rates(5.0)[JOINT_STATE] == 0.0  # silent for longer than the window


def test_task_and_config_updates():
    config = ObservationConfig(joint_names=("a",), task="pick", expected_image_height=4,
                               expected_image_width=6)
    buffer = ObservationBuffer.from_config(config, max_input_age_s=0.5)
    assert buffer.expected_image_size == (4, 6)
    buffer.add_joint_state(["a"], [0.0], receive_time=0.0)
    buffer.add_image("top", IMAGE, receive_time=0.0)
    assert buffer.snapshot_with_reason(0.0)[0].task == "pick"
    buffer.set_task("place")
    assert buffer.snapshot_with_reason(0.0)[0].task == "place"
    assert buffer.snapshot_with_reason(1.0)[0] is None
    buffer.set_max_input_age(2.0)
    assert buffer.snapshot_with_reason(1.0)[0] is not None
    buffer.clear()
    assert buffer.snapshot_with_reason(1.0)[0] is None


def test_concurrent_writers_and_a_reader_see_consistent_snapshots():
    buffer = ObservationBuffer(("a", "b"), ("top",), max_input_age_s=1e9)
    stop = threading.Event()
    errors = []

    def write_joints():
        i = 0
        while not stop.is_set():
            buffer.add_joint_state(["b", "a"], [float(i), float(i)], receive_time=float(i))
            i += 1

    def write_images():
        i = 0
        while not stop.is_set():
            buffer.add_image("top", np.full((2, 2, 3), i % 256, np.uint8), receive_time=float(i))
            i += 1

    threads = [threading.Thread(target=write_joints), threading.Thread(target=write_images)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2000):
            observation = buffer.snapshot_with_reason(1e6)[0]
            # A torn read would pair one message's positions with another's receive time.
            if observation is not None and not (observation.state[0] == observation.state[1]
                                                == observation.time):
                errors.append((observation.state, observation.time))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors


POSE_NAMES = tuple(f"object_poses/0/{f}" for f in ("x", "y", "z", "qx", "qy", "qz", "qw"))
POSE_ARRAY = "geometry_msgs/msg/PoseArray"


def pose_array(*xyz_quat):
    from types import SimpleNamespace as Msg

    poses = [Msg(position=Msg(x=p[0], y=p[1], z=p[2]),
                 orientation=Msg(x=p[3], y=p[4], z=p[5], w=p[6])) for p in xyz_quat]
    return Msg(poses=poses)


def env_buffer():
    return ObservationBuffer(("shoulder", "elbow"), ("top",), max_input_age_s=0.5,
                             environment_state_names=POSE_NAMES + ("table/0",))


def test_environment_state_joins_the_observation_in_model_order_and_ages_like_the_rest():
    buffer = env_buffer()
    buffer.add_joint_state(["shoulder", "elbow"], [0.1, 0.2], receive_time=10.0)
    buffer.add_image("top", IMAGE, receive_time=10.0)
    buffer.add_environment_state("object_poses", POSE_ARRAY,
                                 pose_array((0.1, 0.5, 0.02, 0.0, 0.0, 0.0, -1.0)),
                                 receive_time=10.0)
    observation, reason = buffer.snapshot_with_reason(10.1)
    assert observation is None and "environment/table" in reason
    from types import SimpleNamespace as Msg

    buffer.add_environment_state("table", "std_msgs/msg/Float64MultiArray", Msg(data=[0.75]),
                                 receive_time=10.0)
    observation, _ = buffer.snapshot_with_reason(10.1)
    # The quaternion's sign is fixed (qw >= 0): q and -q are the same rotation.
    np.testing.assert_allclose(observation.environment_state,
                               [0.1, 0.5, 0.02, 0.0, 0.0, 0.0, 1.0, 0.75])
    observation, reason = buffer.snapshot_with_reason(10.7)
    assert observation is None and "stale" in reason


@pytest.mark.parametrize("source,message,reason", [
    ("mocap", pose_array((0, 0, 0, 0, 0, 0, 1)), "unknown_source"),
    ("object_poses", pose_array((0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 1)), "size_mismatch"),
    ("object_poses", pose_array((float("nan"), 0, 0, 0, 0, 0, 1)), "non_finite"),
    ("object_poses", object(), "malformed"),
])
def test_bad_environment_state_is_rejected_counted_and_never_stored(source, message, reason):
    buffer = env_buffer()
    with pytest.raises(InputRejected):
        buffer.add_environment_state(source, POSE_ARRAY, message, receive_time=1.0)
    assert buffer.rejection_counts()[f"environment/{source}"] == {reason: 1}
    assert buffer.input_ages(1.0).get("environment/object_poses") is None
