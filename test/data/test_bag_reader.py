# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Reading rosbag2 recordings: storage formats, image encodings, joint picking, bad inputs."""

import numpy as np
import pytest
from bag_fixtures import (
    JOINT_STATE,
    RECORDED_JOINTS,
    RECORDED_STATE_ORDER,
    demo_image,
    image_message,
    joint_state_message,
    truncate_bag,
    write_bag,
    write_demo_bag,
    write_recorded_bag,
)

from snapflow_ros.data.bag_reader import (
    BagError,
    ClockMismatchError,
    CorruptBagError,
    ImageEncodingError,
    MalformedMessageError,
    MessageTypeError,
    MissingJointError,
    MissingTopicError,
    NotABagError,
    find_bags,
    list_topics,
    read_bag,
)


def _assert_names(error: BagError, path, topic=None):
    """Errors must name the file (and the topic) so a user can find the problem."""
    assert str(path) in str(error)
    assert error.path is not None and str(error.path) == str(path)
    if topic is not None:
        assert f"'{topic}'" in str(error) and error.topic == topic


# ------------------------------------------------------------------------------- finding

def test_find_bags_accepts_bag_dirs_mcap_files_and_folders_of_them(tmp_path):
    root = tmp_path / "recordings"
    root.mkdir()
    a = write_demo_bag(root / "day1" / "ep_a", n_steps=5).path
    b = write_demo_bag(root / "day1" / "ep_b", storage="mcap", n_steps=5).path
    c = write_demo_bag(root / "ep_c.mcap", storage="mcap_file", n_steps=5).path
    (root / "notes.txt").write_text("not a bag")
    (root / ".cache").mkdir()
    assert find_bags(root) == [a, b, c]
    assert find_bags([c, a, a / "metadata.yaml"]) == [c, a]


@pytest.mark.parametrize("make", ["missing", "empty_folder", "text_file", "folder_without_meta"])
def test_find_and_read_reject_paths_that_are_not_bags(tmp_path, make):
    path = tmp_path / make
    if make == "empty_folder":
        path.mkdir()
    elif make == "text_file":
        path.write_text("hello")
    elif make == "folder_without_meta":
        path.mkdir()
        (path / "readme.md").write_text("x")
    with pytest.raises(NotABagError) as info:
        find_bags([path])
    _assert_names(info.value, path)
    with pytest.raises(NotABagError) as info:
        read_bag(path, write_demo_bag(tmp_path / "ok", n_steps=2).config())
    _assert_names(info.value, path)


# ------------------------------------------------------------------------------- formats

@pytest.mark.parametrize("storage, compression", [
    ("sqlite3", None), ("mcap", None), ("mcap_file", None),
    ("sqlite3", "file"), ("sqlite3", "message"), ("mcap", "storage"), ("mcap", "message"),
])
def test_every_storage_format_reads_back_what_was_written(tmp_path, storage, compression):
    name = "demo.mcap" if storage == "mcap_file" else "demo"
    bag = write_demo_bag(tmp_path / name, storage=storage, compression=compression, n_steps=20)
    streams = read_bag(bag.path, bag.config())
    camera = bag.topics[bag.camera_topics[0]]
    np.testing.assert_array_equal(streams.cameras["top"].values, camera.values)
    np.testing.assert_array_equal(streams.cameras["top"].stamps_ns, camera.header_ns)
    np.testing.assert_allclose(streams.state.values, bag.topics["/joint_states"].values,
                               rtol=1e-6)
    np.testing.assert_allclose(streams.action.values,
                               bag.topics["/leader/joint_states"].values, rtol=1e-6)
    assert streams.state.values.dtype == np.float32
    assert streams.state_names == streams.action_names == bag.joint_names
    assert streams.task.values == [bag.task]
    assert list_topics(bag.path)["/joint_states"] == (JOINT_STATE, 40)


def test_only_configured_topics_are_decoded(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=10,
                         camera_topics=("/cam_a/image_raw", "/cam_b/image_raw"))
    streams = read_bag(bag.path, bag.config(camera_topics=["/cam_b/image_raw"],
                                            task_topic=""))
    assert list(streams.cameras) == ["top"] and streams.task is None
    assert streams.cameras["top"].topic == "/cam_b/image_raw"
    assert (streams.cameras["top"].values[..., 2] == 100).all()  # camera 1's blue level


# ------------------------------------------------------------------------------- images

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8", "bgra8", "png"])
def test_image_encodings_decode_to_the_same_rgb_pixels(tmp_path, encoding):
    bag = write_demo_bag(tmp_path / "demo", encoding=encoding, n_steps=6)
    streams = read_bag(bag.path, bag.config())
    written = bag.topics[bag.camera_topics[0]].values
    np.testing.assert_array_equal(streams.cameras["top"].values, written)


def test_jpeg_images_decode_close_to_the_original(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", encoding="jpeg", n_steps=6, image_size=(32, 32))
    decoded = read_bag(bag.path, bag.config()).cameras["top"].values.astype(int)
    written = bag.topics[bag.camera_topics[0]].values.astype(int)
    assert decoded.shape == written.shape
    assert np.abs(decoded - written).mean() < 3.0


def test_images_are_resized_once_to_the_model_size(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=6, image_size=(48, 64))
    streams = read_bag(bag.path, bag.config(image_height=24, image_width=16))
    frames = streams.cameras["top"].values
    assert frames.shape[1:] == (24, 16, 3) and frames.dtype == np.uint8
    # The red channel carries the frame number and is uniform, so resizing keeps it exactly.
    np.testing.assert_array_equal(frames[:, 0, 0, 0],
                                  bag.topics[bag.camera_topics[0]].values[:, 0, 0, 0])


def test_padded_image_rows_are_cropped(tmp_path):
    image = demo_image(7, (10, 9))
    msg = image_message(image, "rgb8", 1_000, row_padding=3)
    bag = _single_stream_bag(tmp_path, camera_msgs=[msg])
    streams = read_bag(bag, _config(image_height=10, image_width=9))
    np.testing.assert_array_equal(streams.cameras["top"].values[0], image)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "bayer_rggb8"])
def test_unsupported_image_encoding_names_file_topic_and_encoding(tmp_path, encoding):
    msg = image_message(demo_image(0, (4, 4)), encoding, 1_000)
    bag = _single_stream_bag(tmp_path, camera_msgs=[msg])
    with pytest.raises(ImageEncodingError, match=encoding) as info:
        read_bag(bag, _config())
    _assert_names(info.value, bag, "/cam/image_raw")


# ------------------------------------------------------------------------------- joints

def test_joints_are_picked_by_name_whatever_the_message_order(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=10,
                         state_name_order=("gripper", "shoulder", "elbow"))
    streams = read_bag(bag.path, bag.config(joint_names=["elbow", "gripper"]))
    assert streams.state_names == ("elbow", "gripper")
    np.testing.assert_allclose(streams.state.values, bag.topics["/joint_states"].values[:, 1:],
                               rtol=1e-6)
    assert streams.action_names == ("elbow", "gripper")
    assert streams.action.values.shape == (10, 2)


def test_without_joint_names_the_first_message_order_is_used(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=4,
                         state_name_order=("gripper", "shoulder", "elbow"))
    streams = read_bag(bag.path, bag.config())
    assert streams.state_names == ("gripper", "shoulder", "elbow")
    np.testing.assert_allclose(streams.state.values[:, 0],
                               bag.topics["/joint_states"].values[:, 2], rtol=1e-6)


def test_joint_trajectory_actions_take_the_first_point(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=10, action_type="joint_trajectory",
                         action_topic="/joint_trajectory")
    streams = read_bag(bag.path, bag.config())
    np.testing.assert_allclose(streams.action.values, bag.topics["/joint_trajectory"].values,
                               rtol=1e-6)


def test_float64_multi_array_actions_are_positional(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=10, action_type="float64_multi_array",
                         action_topic="/command")
    streams = read_bag(bag.path, bag.config())
    assert streams.action_names == bag.joint_names
    np.testing.assert_allclose(streams.action.values, bag.topics["/command"].values, rtol=1e-6)
    assert not streams.action.header_time  # no header: bag receive time
    with pytest.raises(MalformedMessageError, match="action_joint_names") as info:
        read_bag(bag.path, bag.config(joint_names=["shoulder", "elbow"]))
    _assert_names(info.value, bag.path, "/command")


def test_joints_missing_from_the_messages_are_named(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=4)
    with pytest.raises(MissingJointError, match="wrist") as info:
        read_bag(bag.path, bag.config(joint_names=["shoulder", "wrist"]))
    _assert_names(info.value, bag.path, "/joint_states")
    with pytest.raises(MissingJointError, match="finger") as info:
        read_bag(bag.path, bag.config(action_joint_names=["finger"]))
    _assert_names(info.value, bag.path, "/leader/joint_states")


# ------------------------------------------------------------------------------- topics

def test_missing_topic_is_named_with_the_topics_the_bag_has(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=4)
    with pytest.raises(MissingTopicError, match="/joint_states") as info:
        read_bag(bag.path, bag.config(camera_topics=["/wrist/image_raw"]))
    _assert_names(info.value, bag.path, "/wrist/image_raw")


def test_wrong_message_type_names_expected_and_found_types(tmp_path):
    bag = write_demo_bag(tmp_path / "demo", n_steps=4)
    with pytest.raises(MessageTypeError,
                       match="JointState in the bag, expected .*msg/Image") as info:
        read_bag(bag.path, bag.config(state_topic=bag.camera_topics[0],
                                      camera_topics=["/joint_states"]))
    assert info.value.topic in ("/joint_states", bag.camera_topics[0])
    _assert_names(info.value, bag.path)
    with pytest.raises(MessageTypeError, match="JointTrajectory") as info:
        read_bag(bag.path, bag.config(action_type="joint_trajectory"))
    _assert_names(info.value, bag.path, "/leader/joint_states")


# ------------------------------------------------------------------- types from the bag

@pytest.mark.parametrize("action_type, action_topic", [
    ("joint_state", "/leader/joint_states"), ("joint_trajectory", "/joint_trajectory"),
    ("float64_multi_array", "/command")])
def test_the_action_type_comes_from_the_bag(tmp_path, action_type, action_topic):
    bag = write_demo_bag(tmp_path / "demo", n_steps=6, action_type=action_type,
                         action_topic=action_topic)
    streams = read_bag(bag.path, bag.config(action_type="auto"))
    np.testing.assert_allclose(streams.action.values, bag.topics[action_topic].values,
                               rtol=1e-6)
    assert streams.action.msgtype == bag.topics[action_topic].msgtype


def test_a_recording_as_ros2_bag_record_makes_it_reads_without_type_settings(tmp_path):
    bag = write_recorded_bag(tmp_path / "recorded", n_steps=10)
    config = bag.config()
    assert config.action_type == "auto"
    streams = read_bag(bag.path, config)
    # Every state joint, extra one included, in the follower's order; the leader's joints
    # lined up with the state's order.
    assert streams.state_names == RECORDED_STATE_ORDER
    assert streams.action_names == ("gripper", "shoulder", "elbow")
    written = bag.topics["/leader/joint_states"].values  # columns in RECORDED_JOINTS order
    order = [RECORDED_JOINTS.index(n) for n in streams.action_names]
    np.testing.assert_allclose(streams.action.values, written[:, order], rtol=1e-6)
    state = bag.topics["/joint_states"].values
    np.testing.assert_allclose(streams.state.values[:, 2], state[:, 0], rtol=1e-6)
    assert not streams.state.values[:, 1].any()  # the extra joint, recorded as 0


@pytest.mark.parametrize("requested, requested_msgtype", [
    ("joint_trajectory", "trajectory_msgs/msg/JointTrajectory"),
    ("float64_multi_array", "std_msgs/msg/Float64MultiArray")])
def test_an_explicit_action_type_that_disagrees_with_the_bag_names_both(tmp_path, requested,
                                                                        requested_msgtype):
    bag = write_recorded_bag(tmp_path / "recorded", n_steps=4)
    with pytest.raises(MessageTypeError) as info:
        read_bag(bag.path, bag.config(action_type=requested))
    _assert_names(info.value, bag.path, "/leader/joint_states")
    message = str(info.value)
    assert f"{JOINT_STATE} in the bag" in message
    assert requested in message and requested_msgtype in message
    # The matching override is accepted.
    assert read_bag(bag.path, bag.config(action_type="joint_state")).action_names


def test_an_action_topic_of_a_non_action_type_is_refused(tmp_path):
    bag = write_recorded_bag(tmp_path / "recorded", n_steps=4)
    with pytest.raises(MessageTypeError, match="not an action message") as info:
        read_bag(bag.path, bag.config(action_topic="/robot_description"))
    _assert_names(info.value, bag.path, "/robot_description")
    # The measured state as the action is a JointState by definition: auto reads it.
    streams = read_bag(bag.path, bag.config(action_topic="/joint_states"))
    assert streams.action_names == RECORDED_STATE_ORDER


# ------------------------------------------------------------------------------- damage

@pytest.mark.parametrize("storage, compression, name", [
    ("sqlite3", None, "demo"), ("mcap", None, "demo"), ("mcap_file", None, "demo.mcap"),
    ("sqlite3", "file", "demo"),
])
def test_truncated_bags_raise_corrupt_bag_error_naming_the_file(tmp_path, storage, compression,
                                                                 name):
    bag = write_demo_bag(tmp_path / name, storage=storage, compression=compression, n_steps=60)
    truncate_bag(bag.path, 0.6)
    with pytest.raises(CorruptBagError) as info:
        read_bag(bag.path, bag.config())
    _assert_names(info.value, bag.path)


def test_garbage_in_a_message_is_a_corrupt_bag_naming_the_topic(tmp_path):
    bag = _single_stream_bag(tmp_path, raw_state=b"\x00\x01\x00\x00garbage")
    with pytest.raises(CorruptBagError) as info:
        read_bag(bag, _config())
    _assert_names(info.value, bag, "/joint_states")


def test_header_and_receive_clocks_that_disagree_are_refused(tmp_path):
    # Header stamps on sim time (near zero) while header-less actions carry wall-clock times.
    messages = [("/cam/image_raw", "sensor_msgs/msg/Image", 10**18 + i * 10**7,
                 image_message(demo_image(i, (8, 8)), "rgb8", i * 10**7)) for i in range(5)]
    messages += [("/joint_states", JOINT_STATE, 10**18 + i * 10**7,
                  joint_state_message(["a"], [0.1 * i], i * 10**7)) for i in range(5)]
    from bag_fixtures import float64_multi_array_message
    messages += [("/command", "std_msgs/msg/Float64MultiArray", 10**18 + i * 10**7,
                  float64_multi_array_message([0.2 * i])) for i in range(5)]
    bag = write_bag(tmp_path / "simtime", messages)
    config = _config(action_topic="/command", action_type="float64_multi_array")
    with pytest.raises(ClockMismatchError, match="time_source: receive") as info:
        read_bag(bag, config)
    _assert_names(info.value, bag)
    from snapflow_ros.config_fields import replace_config
    streams = read_bag(bag, replace_config(config, time_source="receive"))
    assert len(streams.action) == 5


# ------------------------------------------------------------------------------- helpers

def _config(**changes):
    from snapflow_ros.data.config import BagTopicsConfig

    values = dict(camera_topics=("/cam/image_raw",), state_topic="/joint_states",
                  action_topic="/joint_states", action_type="joint_state", image_height=8,
                  image_width=8, min_episode_steps=1)
    values.update(changes)
    return BagTopicsConfig(**values)


def _single_stream_bag(tmp_path, *, camera_msgs=None, raw_state=None):
    """A bag with one camera topic and a /joint_states topic (raw bytes if given)."""
    camera_msgs = camera_msgs or [image_message(demo_image(0, (8, 8)), "rgb8", 1_000)]
    messages = [("/cam/image_raw", "sensor_msgs/msg/Image", 1_000 + i, m)
                for i, m in enumerate(camera_msgs)]
    state = raw_state if raw_state is not None else joint_state_message(["a"], [0.5], 1_000)
    messages.append(("/joint_states", JOINT_STATE, 2_000, state))
    return write_bag(tmp_path / "single", messages)


def test_messages_are_ordered_by_header_stamp_not_arrival(tmp_path):
    # Frames 1 and 2 arrive swapped (e.g. two capture threads); the header order is the truth.
    stamps = [0, 40, 20, 60]
    messages = [("/cam/image_raw", "sensor_msgs/msg/Image", 1_000 + 10 * i,
                 image_message(demo_image(s, (8, 8)), "rgb8", 10**6 * s))
                for i, s in enumerate(stamps)]
    messages.append(("/joint_states", JOINT_STATE, 2_000, joint_state_message(["a"], [0], 0)))
    bag = write_bag(tmp_path / "swapped", messages)
    camera = read_bag(bag, _config()).cameras["top"]
    assert camera.stamps_ns.tolist() == [0, 20 * 10**6, 40 * 10**6, 60 * 10**6]
    assert camera.values[:, 0, 0, 0].tolist() == [0, 20, 40, 60]
    by_arrival = read_bag(bag, _config(time_source="receive")).cameras["top"]
    assert by_arrival.values[:, 0, 0, 0].tolist() == stamps


def test_a_storage_file_whose_metadata_was_lost_is_still_a_bag(tmp_path):
    bag = write_demo_bag(tmp_path / "crashed", n_steps=10)
    (bag.path / "metadata.yaml").unlink()  # e.g. the recorder was killed
    (found,) = find_bags(tmp_path)
    assert found.suffix == ".db3"
    assert len(read_bag(found, bag.config()).action) == 10
