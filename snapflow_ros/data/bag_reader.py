# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Read the configured topics of rosbag2 recordings into time-stamped numpy streams.

Bags are read with the ``rosbags`` library: rosbag2 directories in sqlite3 or mcap storage
(also zstd file / message / chunk compressed) and single ``.mcap`` or ``.db3`` files. Images
are decoded to RGB uint8 and resized once to the model size; joint states are picked by name.
Message types come from the bag's own metadata (the action's too, unless the config overrides
it, in which case the two must agree).
Every problem raises a :class:`BagError` subclass whose message names the file and the topic.

Neither torch nor rclpy is imported; OpenCV is imported only to decode compressed images and to
resize (without it, resizing falls back to nearest-neighbour in numpy).
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

from snapflow_ros.data.bag_errors import (
    BagError,
    ClockMismatchError,
    CorruptBagError,
    ImageEncodingError,
    MalformedMessageError,
    MessageTypeError,
    MissingJointError,
    MissingTopicError,
    NotABagError,
)
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.data.environment_state import (
    ENVIRONMENT_STATE_TYPES,
    EnvironmentStateError,
    environment_state_rows,
    source_key,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
STRING = "std_msgs/msg/String"
BOOL = "std_msgs/msg/Bool"

ACTION_MSGTYPES = {
    "joint_state": JOINT_STATE,
    "joint_trajectory": JOINT_TRAJECTORY,
    "float64_multi_array": FLOAT64_MULTI_ARRAY,
}
RAW_IMAGE_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")
BAG_FILE_SUFFIXES = (".mcap", ".db3")

# Header and bag clocks further apart than this are different clocks (sim time, unsynced PCs).
_CLOCK_MISMATCH_NS = 1_000_000_000


# Errors the storage and CDR layers raise on damaged files; anything else is a real bug.
_STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    ReaderError, SerdeError, sqlite3.Error, EOFError, OSError, struct.error, IndexError,
    KeyError, UnicodeDecodeError,
)
try:  # rosbags decompresses with backports.zstd (or compression.zstd on Python >= 3.14)
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _zstd = None
if _zstd is not None and hasattr(_zstd, "ZstdError"):
    _STORAGE_ERRORS = (*_STORAGE_ERRORS, _zstd.ZstdError)


@functools.lru_cache(maxsize=1)
def typestore():
    """The rosbags typestore of the newest ROS 2 distro this rosbags version knows."""
    store = getattr(Stores, "ROS2_KILTED", None) or Stores.ROS2_JAZZY
    return get_typestore(store)


# ------------------------------------------------------------------------------ finding bags

def _is_bag_dir(path: Path) -> bool:
    return (path / "metadata.yaml").is_file()


def find_bags(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Recordings under ``paths``: bag directories, single .mcap / .db3 files, or folders of them.

    Folders are searched recursively (hidden folders skipped, a bag directory is not entered).
    Raises :class:`NotABagError` for a path that does not exist or holds no recording.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise NotABagError("no such file or directory", path=path)
        if path.is_file():
            if path.name == "metadata.yaml":
                found.append(path.parent)
            elif path.suffix in BAG_FILE_SUFFIXES:
                found.append(path)
            else:
                raise NotABagError(
                    "not a rosbag2 recording (expected a bag directory with metadata.yaml, "
                    "an .mcap or .db3 file, or a folder of them)", path=path)
            continue
        if _is_bag_dir(path):
            found.append(path)
            continue
        inside = _search_folder(path)
        if not inside:
            raise NotABagError(
                "no rosbag2 recording in this folder (no metadata.yaml, .mcap or .db3 file)",
                path=path)
        found.extend(inside)
    unique: list[Path] = []
    seen: set[Path] = set()
    for bag in found:
        key = bag.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(bag)
    return unique


def _search_folder(folder: Path) -> list[Path]:
    bags: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            bags.extend([child] if _is_bag_dir(child) else _search_folder(child))
        elif child.suffix in BAG_FILE_SUFFIXES:
            bags.append(child)
    return bags


# ------------------------------------------------------------------------------- the streams

@dataclasses.dataclass
class TopicStream:
    """All messages of one topic: times (ns) and decoded values, sorted by time."""

    topic: str
    msgtype: str
    stamps_ns: np.ndarray  # (N,) int64, the configured time source
    receive_ns: np.ndarray  # (N,) int64, bag receive time
    values: Any  # (N, ...) ndarray, or a list for text / bool streams
    header_time: bool = False  # True if stamps_ns came from header.stamp
    non_finite: int = 0  # messages left out because a value was NaN or inf

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def rate_hz(self) -> float:
        """Mean message rate (Hz) over the stream's span; 0 with fewer than two messages."""
        if len(self) < 2 or self.stamps_ns[-1] == self.stamps_ns[0]:
            return 0.0
        return (len(self) - 1) * 1e9 / float(self.stamps_ns[-1] - self.stamps_ns[0])


@dataclasses.dataclass
class BagStreams:
    """The configured topics of one bag, decoded."""

    path: Path
    cameras: dict[str, TopicStream]  # camera key -> values (N, h, w, 3) uint8 RGB
    state: TopicStream  # values (N, S) float32
    action: TopicStream  # values (N, A) float32
    task: TopicStream | None  # values: list of str
    marker: TopicStream | None  # values: list of bool or str
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    # topic -> values (N, n) float32, in config order; their names concatenated
    environment: dict[str, TopicStream] = dataclasses.field(default_factory=dict)
    environment_state_names: tuple[str, ...] = ()

    def required(self) -> dict[str, TopicStream]:
        """Streams every sample needs (cameras, state, action, environment state), by topic."""
        streams = {s.topic: s for s in self.cameras.values()}
        streams[self.state.topic] = self.state
        streams[self.action.topic] = self.action
        streams.update(self.environment)
        return streams

    def all_streams(self) -> list[TopicStream]:
        """Every decoded stream, optional ones included."""
        return [*self.required().values(), *(s for s in (self.task, self.marker) if s)]


def list_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """``{topic: (message type, message count)}`` of a bag, from its index only."""
    path = Path(path)
    try:
        with Reader(path) as reader:
            return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
    except _STORAGE_ERRORS as exc:
        raise CorruptBagError(f"cannot open: {exc}", path=path) from exc


# ----------------------------------------------------------------------------- decoding

def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (h, w, 3) uint8 image to (height, width, 3): area averaging when shrinking."""
    if image.shape[:2] == (height, width):
        return image
    cv2 = _cv2()
    if cv2 is None:
        rows = (np.arange(height) * image.shape[0] // height).astype(np.intp)
        cols = (np.arange(width) * image.shape[1] // width).astype(np.intp)
        return image[rows][:, cols]
    shrink = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def decode_raw_image(msg: Any, *, path: Path, topic: str) -> np.ndarray:
    """sensor_msgs/Image -> (h, w, 3) uint8 RGB (rgb8, bgr8, mono8, rgba8, bgra8)."""
    encoding = str(msg.encoding).lower()
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(encoding)
    if channels is None:
        raise ImageEncodingError(
            f"unsupported image encoding '{msg.encoding}' (supported: "
            f"{', '.join(RAW_IMAGE_ENCODINGS)}, or sensor_msgs/CompressedImage jpeg/png)",
            path=path, topic=topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < width * channels or data.size < step * height or height == 0 or width == 0:
        raise MalformedMessageError(
            f"image of {height}x{width} {encoding} with step {step} holds {data.size} bytes",
            path=path, topic=topic)
    pixels = data[: step * height].reshape(height, step)[:, : width * channels]
    pixels = pixels.reshape(height, width, channels)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


def decode_compressed_image(msg: Any, *, path: Path, topic: str) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png) -> (h, w, 3) uint8 RGB."""
    fmt = str(msg.format).lower()
    known = any(k in fmt for k in ("jpeg", "jpg", "png"))
    if "compresseddepth" in fmt or (fmt and not known):
        raise ImageEncodingError(
            f"unsupported compressed image format '{msg.format}' (supported: jpeg, png)",
            path=path, topic=topic)
    cv2 = _cv2()
    if cv2 is None:
        raise ImageEncodingError("decoding compressed images needs OpenCV (cv2), which is not "
                                 "installed in this environment", path=path, topic=topic)
    image = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptBagError(f"a '{msg.format}' image could not be decoded", path=path,
                              topic=topic)
    # image_transport names the channel order of the compressed data after "compressed".
    if fmt.rstrip().endswith("compressed rgb8"):
        return image
    return np.ascontiguousarray(image[..., ::-1])


class _JointPicker:
    """Pick named joints, in a fixed order, from messages with their own name lists."""

    def __init__(self, wanted: tuple[str, ...], *, path: Path, topic: str, what: str) -> None:
        self.wanted = wanted
        self.path, self.topic, self.what = path, topic, what
        self._index: dict[tuple[str, ...], np.ndarray] = {}

    def pick(self, names: list[str], values: np.ndarray) -> np.ndarray:
        key = tuple(names)
        index = self._index.get(key)
        if index is None:
            position = {n: i for i, n in enumerate(key)}
            missing = [n for n in self.wanted if n not in position]
            if missing:
                raise MissingJointError(
                    f"{self.what} {missing} named in the config are not in the messages "
                    f"(they have {list(key)})", path=self.path, topic=self.topic)
            index = np.array([position[n] for n in self.wanted], dtype=np.intp)
            self._index[key] = index
        if len(values) != len(names):
            raise MalformedMessageError(
                f"a message names {len(names)} joints but has {len(values)} positions",
                path=self.path, topic=self.topic)
        return np.asarray(values, dtype=np.float64)[index]


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# ------------------------------------------------------------------------------- reading

@dataclasses.dataclass
class _Collector:
    """Messages of one topic gathered while reading, before sorting."""

    topic: str
    msgtype: str
    receive: list[int] = dataclasses.field(default_factory=list)
    header: list[int] = dataclasses.field(default_factory=list)  # 0 for header-less types
    values: list = dataclasses.field(default_factory=list)

    def stream(self, time_source: str, value_shape: tuple[int, ...] | None,
               dtype: Any = None, values: list | None = None) -> TopicStream:
        """Sorted stream; ``values`` replaces the collected ones (e.g. joints picked by name)."""
        values_in = self.values if values is None else values
        receive = np.asarray(self.receive, dtype=np.int64)
        header = np.asarray(self.header, dtype=np.int64) if self.header else np.zeros_like(
            receive)
        # A topic whose stamps are all zero (e.g. trajectories meaning "now") has no header
        # time; otherwise its stamps are used as they are, a first stamp at sim time 0 included.
        use_header = time_source == "header" and bool(np.any(header != 0))
        stamps = header if use_header else receive
        in_order = bool(np.all(np.diff(stamps) >= 0))
        order = np.arange(len(stamps)) if in_order else np.argsort(stamps, kind="stable")
        if value_shape is None:
            sorted_values: Any = [values_in[i] for i in order]
        elif values_in:
            sorted_values = np.stack(values_in).astype(dtype, copy=False)
            if not in_order:  # header stamps may arrive out of order; usually they do not
                sorted_values = sorted_values[order]
        else:
            sorted_values = np.zeros((0, *value_shape), dtype=dtype)
        stamps, receive = stamps[order], receive[order]
        non_finite = 0
        if (value_shape is not None and len(sorted_values)
                and np.issubdtype(sorted_values.dtype, np.floating)):
            # A NaN or inf reading (a tracker that lost the object, a driver glitch) is left
            # out as if it had never arrived: the sample takes the previous message while that
            # is within the tolerance, else it is dropped as stale; one bad message must not
            # cost the whole recording, nor reach the training batch.
            finite = np.isfinite(sorted_values.reshape(len(sorted_values), -1)).all(axis=1)
            non_finite = int((~finite).sum())
            if non_finite:
                stamps, receive, sorted_values = stamps[finite], receive[finite], \
                    sorted_values[finite]
        return TopicStream(self.topic, self.msgtype, stamps, receive, sorted_values,
                           header_time=use_header, non_finite=non_finite)


_ACTION_TYPE_OF_MSGTYPE = {msgtype: name for name, msgtype in ACTION_MSGTYPES.items()}


def resolve_action_type(path: Path, config: BagTopicsConfig, recorded: str) -> str:
    """The action type (``joint_state`` ...) of a bag whose action topic records ``recorded``.

    ``config.action_type`` "auto" takes it from the bag; an explicit one must agree with it.
    Raises :class:`MessageTypeError` naming the topic, the bag's type and the requested one.
    """
    topic = config.action_topic
    from_bag = _ACTION_TYPE_OF_MSGTYPE.get(recorded)
    if config.action_type == "auto":
        if from_bag is None:
            raise MessageTypeError(
                f"has type {recorded} in the bag, which is not an action message (expected "
                f"{', '.join(ACTION_MSGTYPES.values())})", path=path, topic=topic)
        return from_bag
    requested = ACTION_MSGTYPES[config.action_type]
    if recorded != requested:
        raise MessageTypeError(
            f"has type {recorded} in the bag, but action_type {config.action_type} requests "
            f"{requested} (drop --action-type / set action_type: auto to take the type from "
            "the bag)", path=path, topic=topic)
    return config.action_type


def _expected_types(config: BagTopicsConfig, present: dict[str, str],
                    path: Path) -> dict[str, tuple[str, ...]]:
    """Allowed message types per configured topic; the action's as the bag records it."""
    types = {topic: (IMAGE, COMPRESSED_IMAGE) for topic in config.camera_topics}
    types[config.state_topic] = (JOINT_STATE,)
    if config.action_topic != config.state_topic and config.action_topic in present:
        action_type = resolve_action_type(path, config, present[config.action_topic])
        types[config.action_topic] = (ACTION_MSGTYPES[action_type],)
    elif config.action_topic != config.state_topic:
        types[config.action_topic] = ()  # reported as missing below
    # action_topic == state_topic: a JointState (BagTopicsConfig allows no other type there).
    for topic in config.environment_state_topics:
        types[topic] = tuple(ENVIRONMENT_STATE_TYPES.values())
    if config.task_topic:
        types[config.task_topic] = (STRING,)
    if config.episode_marker_topic:
        types[config.episode_marker_topic] = (BOOL, STRING)
    return types


def read_bag(path: str | Path, config: BagTopicsConfig) -> BagStreams:
    """Decode the configured topics of one bag (only those) into :class:`BagStreams`.

    Raises :class:`CorruptBagError` for a damaged file and the other :class:`BagError`
    subclasses for content that does not match ``config``.
    """
    path = Path(path)
    if not path.exists():
        raise NotABagError("no such file or directory", path=path)
    if path.is_dir() and not _is_bag_dir(path):
        raise NotABagError("not a rosbag2 directory (no metadata.yaml)", path=path)
    if path.is_file() and path.suffix not in BAG_FILE_SUFFIXES:
        raise NotABagError("not a rosbag2 recording (expected .mcap or .db3)", path=path)
    store = typestore()
    try:
        reader = Reader(path)
        reader.open()
    except _STORAGE_ERRORS as exc:
        raise CorruptBagError(f"cannot open the bag ({type(exc).__name__}: {exc}); if the "
                              "recorder crashed, try 'ros2 bag reindex' or 'mcap recover'",
                              path=path) from exc
    try:
        connections = reader.connections
        present = {c.topic: c.msgtype for c in connections}
        expected = _expected_types(config, present, path)
        for topic, allowed in expected.items():
            if topic not in present:
                raise MissingTopicError(
                    f"not in the bag (it has: {', '.join(sorted(present)) or 'no topics'})",
                    path=path, topic=topic)
            if present[topic] not in allowed:
                raise MessageTypeError(
                    f"has type {present[topic]} in the bag, expected {' or '.join(allowed)}",
                    path=path, topic=topic)
        wanted = [c for c in connections if c.topic in expected]
        collectors = {t: _Collector(t, present[t]) for t in expected}
        _read_messages(reader, wanted, collectors, store, config, path)
    finally:
        reader.close()
    return _to_streams(path, config, collectors)


def _read_messages(reader: Reader, connections: list, collectors: dict[str, _Collector],
                   store: Any, config: BagTopicsConfig, path: Path) -> None:
    size = (config.image_height, config.image_width)
    cameras = set(config.camera_topics)
    topic = None
    try:
        for connection, receive_ns, raw in reader.messages(connections):
            topic = connection.topic
            msg = store.deserialize_cdr(raw, connection.msgtype)
            collector = collectors[topic]
            collector.receive.append(receive_ns)
            if topic in cameras:
                decode = (decode_raw_image if connection.msgtype == IMAGE
                          else decode_compressed_image)
                image = decode(msg, path=path, topic=topic)
                collector.values.append(resize_image(image, *size))
                collector.header.append(_stamp_ns(msg))
            elif topic in (config.task_topic, config.episode_marker_topic):
                collector.values.append(msg.data)
                collector.header.append(0)
            else:
                collector.values.append(msg)
                collector.header.append(0 if connection.msgtype == FLOAT64_MULTI_ARRAY
                                        else _stamp_ns(msg))
    except BagError:
        raise
    except _STORAGE_ERRORS as exc:
        raise CorruptBagError(f"damaged data ({type(exc).__name__}: {exc})", path=path,
                              topic=topic) from exc


def _to_streams(path: Path, config: BagTopicsConfig,
                collectors: dict[str, _Collector]) -> BagStreams:
    size = (config.image_height, config.image_width)
    state_c = collectors[config.state_topic]
    action_c = collectors[config.action_topic]
    state_names = tuple(config.joint_names) or (tuple(state_c.values[0].name)
                                                if state_c.values else ())
    picker = _JointPicker(state_names, path=path, topic=config.state_topic, what="joints")
    state_rows = [picker.pick(m.name, m.position) for m in state_c.values]
    action_type = _ACTION_TYPE_OF_MSGTYPE[action_c.msgtype]
    action_names, action_rows = _pick_actions(path, config, action_type, action_c.values,
                                              state_names)

    cameras = {key: collectors[topic].stream(config.time_source, (*size, 3), np.uint8)
               for key, topic in zip(config.camera_keys, config.camera_topics)}
    streams = BagStreams(
        path=path,
        cameras=cameras,
        state=state_c.stream(config.time_source, (len(state_names),), np.float32, state_rows),
        action=action_c.stream(config.time_source, (len(action_names),), np.float32,
                               action_rows),
        task=collectors[config.task_topic].stream("receive", None)
        if config.task_topic else None,
        marker=collectors[config.episode_marker_topic].stream("receive", None)
        if config.episode_marker_topic else None,
        state_names=state_names,
        action_names=action_names,
    )
    for topic in config.environment_state_topics:
        collector = collectors[topic]
        try:
            names, rows = environment_state_rows(source_key(topic), collector.msgtype,
                                                 collector.values,
                                                 config.environment_state_layout)
        except EnvironmentStateError as exc:
            raise MalformedMessageError(str(exc), path=path, topic=topic) from exc
        streams.environment[topic] = collector.stream(config.time_source, (len(names),),
                                                      np.float32, list(rows))
        streams.environment_state_names += names
    if config.time_source == "header":
        _check_clocks(streams)
    return streams


def _pick_actions(path: Path, config: BagTopicsConfig, action_type: str, messages: list,
                  state_names: tuple[str, ...]) -> tuple[tuple[str, ...], list[np.ndarray]]:
    """Action names and one (A,) row per action message of type ``action_type``."""
    topic = config.action_topic
    if action_type == "float64_multi_array":
        names = tuple(config.action_joint_names) or state_names
        rows = [np.asarray(m.data, dtype=np.float64) for m in messages]
        for row in rows:
            if row.shape != (len(names),):
                raise MalformedMessageError(
                    f"an action array has {row.size} entries but {len(names)} action names "
                    f"{list(names)} are expected (set action_joint_names to label the "
                    "array's entries)", path=path, topic=topic)
        return names, rows
    if action_type == "joint_trajectory":
        message_names = [list(m.joint_names) for m in messages]
        points = []
        for m in messages:
            if not m.points:
                raise MalformedMessageError("a JointTrajectory message has no points",
                                            path=path, topic=topic)
            points.append(np.asarray(m.points[0].positions, dtype=np.float64))
    else:
        message_names = [list(m.name) for m in messages]
        points = [np.asarray(m.position, dtype=np.float64) for m in messages]
    names = tuple(config.action_joint_names) or _default_action_names(
        tuple(message_names[0]) if message_names else (), state_names)
    picker = _JointPicker(names, path=path, topic=topic, what="action joints")
    return names, [picker.pick(n, p) for n, p in zip(message_names, points)]


def _default_action_names(message_names: tuple[str, ...],
                          state_names: tuple[str, ...]) -> tuple[str, ...]:
    """Action joints in the state's order where both name them, then the action's own.

    A leader arm publishes its joints in its own order; lined up with the state, action and
    state dimensions of the same joint match, as LeRobot records them.
    """
    in_action = set(message_names)
    shared = [n for n in state_names if n in in_action]
    return (*shared, *(n for n in message_names if n not in set(shared)))


def _check_clocks(streams: BagStreams) -> None:
    """Refuse to combine header times and receive times taken from different clocks."""
    with_header = [s for s in streams.all_streams() if s.header_time and len(s)]
    without = [s for s in streams.all_streams() if not s.header_time and len(s)]
    if not with_header or not without:
        return
    offsets = np.concatenate([s.receive_ns - s.stamps_ns for s in with_header])
    offset = int(np.median(offsets))
    if abs(offset) > _CLOCK_MISMATCH_NS:
        raise ClockMismatchError(
            f"header stamps of {[s.topic for s in with_header]} are {offset / 1e9:+.1f} s "
            f"away from the bag receive times used for {[s.topic for s in without]} (sim "
            "time or an unsynchronised clock); set time_source: receive",
            path=streams.path, topic=with_header[0].topic)
