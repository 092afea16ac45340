# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Write small, realistic rosbag2 recordings for tests, with rosbags' own CDR serializer.

:func:`write_demo_bag` records what a teleoperated demonstration looks like (cameras at 30 Hz,
joint states at 100 Hz, leader-arm actions at 50 Hz, header stamps a little before the bag's
receive times) and returns everything it wrote, so a test can predict aligned values exactly.
:func:`write_bag` writes arbitrary messages for bad-input cases. Only numpy, cv2 (for jpeg/png)
and rosbags are needed, so both project environments can use these helpers.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
START_NS = 1_700_000_000_000_000_000  # a realistic epoch time, far from zero

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
STRING = "std_msgs/msg/String"
BOOL = "std_msgs/msg/Bool"

_STORAGE = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
_COMPRESSION = {"file": CompressionMode.FILE, "message": CompressionMode.MESSAGE,
                "storage": CompressionMode.STORAGE}


# ----------------------------------------------------------------------------------- messages

def _header(stamp_ns: int, frame_id: str = ""):
    types = TYPESTORE.types
    stamp = types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_message(rgb: np.ndarray, encoding: str, stamp_ns: int, *, row_padding: int = 0):
    """A sensor_msgs/Image holding ``rgb`` (h, w, 3) uint8 in ``encoding``.

    rgb8, bgr8, mono8, rgba8 and bgra8 are converted; any other name labels raw rgb bytes.
    """
    if encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "mono8":
        pixels = rgb[..., 0]
    elif encoding in ("rgba8", "bgra8"):
        color = rgb if encoding == "rgba8" else rgb[..., ::-1]
        pixels = np.concatenate([color, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    else:
        pixels = rgb
    height, width = rgb.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    return TYPESTORE.types[IMAGE](
        header=_header(stamp_ns, "camera"), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=rows.shape[1], data=np.ascontiguousarray(rows).reshape(-1))


def compressed_image_message(rgb: np.ndarray, fmt: str, stamp_ns: int):
    """A sensor_msgs/CompressedImage of ``rgb`` (h, w, 3) uint8; ``fmt`` is jpeg or png."""
    import cv2

    ok, buffer = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", rgb[..., ::-1].copy())
    assert ok
    label = "rgb8; jpeg compressed bgr8" if fmt == "jpeg" else "rgb8; png compressed bgr8"
    return TYPESTORE.types[COMPRESSED_IMAGE](header=_header(stamp_ns, "camera"), format=label,
                                             data=buffer.reshape(-1).astype(np.uint8))


def joint_state_message(names: Sequence[str], positions: Sequence[float], stamp_ns: int):
    """A sensor_msgs/JointState with positions only (radians)."""
    return TYPESTORE.types[JOINT_STATE](
        header=_header(stamp_ns), name=list(names),
        position=np.asarray(positions, np.float64), velocity=np.zeros(0, np.float64),
        effort=np.zeros(0, np.float64))


def joint_trajectory_message(names: Sequence[str], points: Sequence[Sequence[float]],
                             stamp_ns: int):
    """A trajectory_msgs/JointTrajectory whose points are 20 ms apart."""
    types = TYPESTORE.types
    point_msgs = [
        types["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.asarray(p, np.float64), velocities=np.zeros(0, np.float64),
            accelerations=np.zeros(0, np.float64), effort=np.zeros(0, np.float64),
            time_from_start=types["builtin_interfaces/msg/Duration"](sec=0,
                                                                    nanosec=20_000_000 * i))
        for i, p in enumerate(points)
    ]
    return types[JOINT_TRAJECTORY](header=_header(stamp_ns), joint_names=list(names),
                                   points=point_msgs)


def float64_multi_array_message(values: Sequence[float]):
    """A std_msgs/Float64MultiArray with an empty layout."""
    types = TYPESTORE.types
    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return types[FLOAT64_MULTI_ARRAY](layout=layout, data=np.asarray(values, np.float64))


def string_message(text: str):
    """A std_msgs/String."""
    return TYPESTORE.types[STRING](data=text)


def bool_message(value: bool):
    """A std_msgs/Bool."""
    return TYPESTORE.types[BOOL](data=bool(value))


# -------------------------------------------------------------------------------------- bags

def write_bag(path: str | Path, messages: Iterable[tuple[str, str, int, object]], *,
              storage: str = "sqlite3", compression: str | None = None,
              empty_topics: Sequence[tuple[str, str]] = ()) -> Path:
    """Write ``(topic, msgtype, receive_ns, message)`` tuples to a rosbag2 at ``path``.

    ``storage``: sqlite3, mcap (a bag directory) or mcap_file (``path`` is a single .mcap file).
    ``compression``: None, file, message or storage (zstd; storage is mcap chunk compression).
    Messages may be any ``object`` of the typestore, or raw ``bytes`` already serialized.
    ``empty_topics``: ``(topic, msgtype)`` connections recorded without any message.
    """
    path = Path(path)
    if storage == "mcap_file":
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            bag_dir = write_bag(Path(tmp) / "bag", messages, storage="mcap",
                                compression=compression, empty_topics=empty_topics)
            shutil.move(next(bag_dir.glob("*.mcap")), path)
        return path
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=_STORAGE[storage])
    if compression:
        writer.set_compression(_COMPRESSION[compression], CompressionFormat.ZSTD)
    connections: dict[tuple[str, str], object] = {}
    with writer:
        for topic, msgtype in empty_topics:
            connections[(topic, msgtype)] = writer.add_connection(topic, msgtype,
                                                                  typestore=TYPESTORE)
        for topic, msgtype, receive_ns, message in sorted(messages, key=lambda m: m[2]):
            key = (topic, msgtype)
            if key not in connections:
                connections[key] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            raw = message if isinstance(message, (bytes, bytearray)) else \
                TYPESTORE.serialize_cdr(message, msgtype)
            writer.write(connections[key], int(receive_ns), bytes(raw))
    return path


def storage_file(bag: str | Path) -> Path:
    """The (first) storage file of a bag directory, or the file itself."""
    bag = Path(bag)
    if bag.is_file():
        return bag
    return sorted([*bag.glob("*.db3"), *bag.glob("*.mcap"), *bag.glob("*.zstd")])[0]


def truncate_bag(bag: str | Path, keep_fraction: float = 0.5) -> Path:
    """Cut a bag's storage file to ``keep_fraction`` of its bytes (a crashed recorder)."""
    target = storage_file(bag)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


# ------------------------------------------------------------------------------- demo bags

@dataclasses.dataclass
class WrittenTopic:
    """Everything written on one topic: times (ns) and the values as a test should read them."""

    topic: str
    msgtype: str
    receive_ns: np.ndarray  # (N,) int64
    header_ns: np.ndarray | None  # (N,) int64, None for header-less messages
    values: object  # images (N, h, w, 3) RGB uint8, positions (N, J) float64, or a list


@dataclasses.dataclass
class DemoBag:
    """A written demonstration bag and what is in it."""

    path: Path
    topics: dict[str, WrittenTopic]
    joint_names: tuple[str, ...]
    camera_topics: tuple[str, ...]
    state_topic: str
    action_topic: str
    action_type: str
    task_topic: str
    task: str
    rate_hz: float
    image_size: tuple[int, int]

    def config_dict(self, **overrides) -> dict:
        """A ``BagTopicsConfig`` mapping that reads this bag at its own image size."""
        data = {
            "camera_topics": list(self.camera_topics),
            "state_topic": self.state_topic,
            "action_topic": self.action_topic,
            "action_type": self.action_type,
            "task_topic": self.task_topic,
            "rate_hz": self.rate_hz,
            "image_height": self.image_size[0],
            "image_width": self.image_size[1],
            "min_episode_steps": 1,
        }
        data.update(overrides)
        return data

    def config(self, **overrides):
        """The ``BagTopicsConfig`` of :meth:`config_dict`."""
        from snapflow_ros.config_fields import config_from_dict
        from snapflow_ros.data.config import BagTopicsConfig

        return config_from_dict(BagTopicsConfig, self.config_dict(**overrides))


def demo_image(frame: int, size: tuple[int, int], camera: int = 0) -> np.ndarray:
    """Test pattern (h, w, 3) RGB uint8: red = frame number, green = row ramp, blue = camera."""
    height, width = size
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = frame % 256
    image[..., 1] = (np.arange(height, dtype=np.int64)[:, None] * 255 // max(height - 1, 1))
    image[..., 2] = 40 + 60 * camera
    return image


def demo_joint_positions(t_s: np.ndarray, n_joints: int, lead_s: float = 0.0) -> np.ndarray:
    """Smooth joint trajectory (N, J) in radians at times ``t_s`` (s); actions lead by lead_s."""
    t = np.asarray(t_s, np.float64)[:, None] + lead_s
    j = np.arange(n_joints, dtype=np.float64)[None, :]
    return 0.1 * (j + 1) * np.sin(2 * np.pi * 0.5 * t + j) + 0.01 * j


def _times(rate_hz: float, duration_s: float, gaps: Sequence[tuple[float, float]]) -> np.ndarray:
    """Message times (s) at ``rate_hz`` over ``[0, duration_s)`` outside the gaps."""
    count = int(np.ceil(duration_s * rate_hz - 1e-9))
    times = np.arange(count) / rate_hz
    times = times[times < duration_s - 1e-12]
    for start, end in gaps:
        times = times[(times < start) | (times >= end)]
    return times


def _ns(seconds: np.ndarray | float) -> np.ndarray:
    return START_NS + np.round(np.asarray(seconds, np.float64) * 1e9).astype(np.int64)


def write_demo_bag(
    path: str | Path,
    *,
    storage: str = "sqlite3",
    compression: str | None = None,
    n_steps: int = 40,
    rate_hz: float = 50.0,
    camera_hz: float = 30.0,
    state_hz: float = 100.0,
    joint_names: Sequence[str] = ("shoulder", "elbow", "gripper"),
    camera_topics: Sequence[str] = ("/camera/top/image_raw",),
    image_size: tuple[int, int] = (24, 32),
    encoding: str = "rgb8",
    state_topic: str = "/joint_states",
    state_name_order: Sequence[str] | None = None,
    action_topic: str = "/leader/joint_states",
    action_type: str = "joint_state",
    with_task: bool = True,
    task: str = "pick up the cube",
    task_topic: str = "/task",
    marker: Sequence[tuple[float, bool | str]] = (),
    marker_topic: str = "/episode_marker",
    gaps: Sequence[tuple[float, float]] = (),
    camera_gaps: Sequence[tuple[float, float]] = (),
    latency_s: float = 0.002,
    camera_latency_s: float | None = None,
    extra_messages: Sequence[tuple[str, str, int, object]] = (),
) -> DemoBag:
    """Record a synthetic demonstration of ``n_steps / rate_hz`` seconds and return its content.

    Times are relative to :data:`START_NS`; each message's header stamp is its sample time and
    its receive time is ``latency_s`` later (``camera_latency_s`` for images, if given).
    ``gaps`` are ``(start_s, end_s)`` intervals with no message at all; ``camera_gaps`` silence
    the cameras only. ``marker`` writes ``(time_s, value)`` on ``marker_topic`` (Bool for bool
    values, String otherwise).
    ``encoding`` is rgb8, bgr8, mono8, rgba8, bgra8 (sensor_msgs/Image) or jpeg / png
    (sensor_msgs/CompressedImage). ``extra_messages`` are ``(topic, msgtype, receive_ns,
    message)`` tuples written as they are (topics no config reads).
    """
    duration = n_steps / rate_hz
    joint_names = tuple(joint_names)
    latency_ns = int(round(latency_s * 1e9))
    messages: list[tuple[str, str, int, object]] = []
    topics: dict[str, WrittenTopic] = {}

    camera_latency_ns = latency_ns if camera_latency_s is None else int(
        round(camera_latency_s * 1e9))
    for cam_index, topic in enumerate(camera_topics):
        times = _times(camera_hz, duration, [*gaps, *camera_gaps])
        stamps = _ns(times)
        frames = np.round(times * camera_hz).astype(np.int64)
        images = np.stack([demo_image(int(f), image_size, cam_index) for f in frames]) \
            if len(frames) else np.zeros((0, *image_size, 3), np.uint8)
        compressed = encoding in ("jpeg", "png")
        msgtype = COMPRESSED_IMAGE if compressed else IMAGE
        for stamp, image in zip(stamps, images):
            msg = (compressed_image_message(image, encoding, int(stamp)) if compressed
                   else image_message(image, encoding, int(stamp)))
            messages.append((topic, msgtype, int(stamp) + camera_latency_ns, msg))
        if encoding == "mono8":
            images = np.repeat(images[..., :1], 3, axis=-1)
        topics[topic] = WrittenTopic(topic, msgtype, stamps + camera_latency_ns, stamps, images)

    times = _times(state_hz, duration, gaps)
    stamps = _ns(times)
    positions = demo_joint_positions(times, len(joint_names))
    order = list(state_name_order) if state_name_order is not None else list(joint_names)
    for stamp, row in zip(stamps, positions):
        by_name = dict(zip(joint_names, row))
        messages.append((state_topic, JOINT_STATE, int(stamp) + latency_ns,
                         joint_state_message(order, [by_name.get(n, 0.0) for n in order],
                                             int(stamp))))
    topics[state_topic] = WrittenTopic(state_topic, JOINT_STATE, stamps + latency_ns, stamps,
                                       positions)

    times = _times(rate_hz, duration, gaps)
    stamps = _ns(times)
    actions = demo_joint_positions(times, len(joint_names), lead_s=0.05)
    action_msgtype = {"joint_state": JOINT_STATE, "joint_trajectory": JOINT_TRAJECTORY,
                      "float64_multi_array": FLOAT64_MULTI_ARRAY}[action_type]
    for stamp, row in zip(stamps, actions):
        if action_type == "joint_state":
            msg = joint_state_message(joint_names, row, int(stamp))
        elif action_type == "joint_trajectory":
            # A second point the reader must ignore: only the first point is the action.
            msg = joint_trajectory_message(joint_names, [row, row + 1.0], int(stamp))
        else:
            msg = float64_multi_array_message(row)
        messages.append((action_topic, action_msgtype, int(stamp) + latency_ns, msg))
    topics[action_topic] = WrittenTopic(
        action_topic, action_msgtype, stamps + latency_ns,
        None if action_type == "float64_multi_array" else stamps, actions)

    if with_task:
        receive = int(_ns(0.0)) + latency_ns
        messages.append((task_topic, STRING, receive, string_message(task)))
        topics[task_topic] = WrittenTopic(task_topic, STRING, np.array([receive]), None, [task])

    if marker:
        receive = _ns(np.array([m[0] for m in marker])) + latency_ns
        values = [m[1] for m in marker]
        for stamp, value in zip(receive, values):
            if isinstance(value, bool):
                messages.append((marker_topic, BOOL, int(stamp), bool_message(value)))
            else:
                messages.append((marker_topic, STRING, int(stamp), string_message(str(value))))
        topics[marker_topic] = WrittenTopic(marker_topic, "", receive, None, values)

    messages.extend(extra_messages)
    bag_path = write_bag(path, messages, storage=storage, compression=compression)
    return DemoBag(
        path=bag_path, topics=topics, joint_names=joint_names,
        camera_topics=tuple(camera_topics), state_topic=state_topic, action_topic=action_topic,
        action_type=action_type, task_topic=task_topic if with_task else "", task=task,
        rate_hz=rate_hz, image_size=tuple(image_size))


# The follower's joint_state_broadcaster names its joints in URDF order, with a joint the leader
# arm does not have; the leader publishes the arm joints in its own order.
RECORDED_JOINTS = ("shoulder", "elbow", "gripper")
RECORDED_STATE_ORDER = ("gripper", "wrist_camera_tilt", "shoulder", "elbow")


def write_recorded_bag(path: str | Path, *, storage: str = "sqlite3", n_steps: int = 40,
                       **overrides) -> DemoBag:
    """A leader / follower teleoperation as ``ros2 bag record -a`` stores it.

    Types only in the bag's metadata; follower ``/joint_states`` with an extra joint and its
    own joint order; the leader arm's ``sensor_msgs/JointState`` on ``/leader/joint_states``
    as the action; one camera, also republished as ``<topic>/compressed``; ``/task`` and a
    latched ``/robot_description`` string. The returned config reads the action type from
    the bag (``action_type`` auto).
    """
    camera = overrides.pop("camera_topics", ("/camera/top/image_raw",))[0]
    receive = int(_ns(0.0))
    extra = [("/robot_description", STRING, receive, string_message("<robot name='arm'/>"))]
    for index in range(int(n_steps * 30 / 50)):
        stamp = int(_ns(index / 30.0))
        extra.append((camera + "/compressed", COMPRESSED_IMAGE, stamp + 3_000_000,
                      compressed_image_message(demo_image(index, (24, 32)), "jpeg", stamp)))
    settings = dict(storage=storage, n_steps=n_steps, joint_names=RECORDED_JOINTS,
                    state_name_order=RECORDED_STATE_ORDER, camera_topics=(camera,),
                    action_topic="/leader/joint_states", action_type="joint_state",
                    extra_messages=extra)
    settings.update(overrides)
    bag = write_demo_bag(path, **settings)
    return dataclasses.replace(bag, action_type="auto")
