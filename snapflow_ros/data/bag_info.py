# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What is in rosbag2 recordings, and which ``snapflow train`` flags would read them.

:func:`inspect_bag` gives one bag's storage, duration and per-topic type, count and rate (from
the bag's index and receive times, nothing decoded); :func:`suggest_topics` picks the camera,
state, action and environment-state (object pose) topics by message type over several bags;
:func:`split_episodes` cuts a bag into episodes exactly as training does
(:func:`~snapflow_ros.data.bag_reader.read_bag` and
:func:`~snapflow_ros.data.alignment.align_streams`). Neither torch nor rclpy is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader

from snapflow_ros.data.alignment import align_streams
from snapflow_ros.data.bag_reader import (
    _STORAGE_ERRORS,
    ACTION_MSGTYPES,
    BOOL,
    COMPRESSED_IMAGE,
    FLOAT64_MULTI_ARRAY,
    IMAGE,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    STRING,
    CorruptBagError,
    read_bag,
)
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.data.environment_state import POSE_ARRAY, POSE_STAMPED

# Topic words that mark a JointState as a command (a leader arm, a target), not the measured
# state of the robot that is trained on.
_COMMAND_WORDS = ("leader", "master", "teleop", "command", "cmd", "action", "target",
                  "desired", "goal")
_TASK_WORDS = ("task", "instruction", "prompt", "language")


@dataclasses.dataclass
class TopicInfo:
    """One topic of a bag: message type, count and mean rate (Hz, over its own time span)."""

    topic: str
    msgtype: str
    count: int
    rate_hz: float


@dataclasses.dataclass
class EpisodeInfo:
    """One episode as training would cut it: resampled steps, span (s) and task."""

    segment: int
    steps: int
    duration_s: float
    task: str


@dataclasses.dataclass
class BagInfo:
    """One recording: storage, duration (s), message count and topics; episodes if split."""

    path: Path
    storage: str
    duration_s: float
    start_ns: int
    message_count: int
    topics: list[TopicInfo]
    episodes: list[EpisodeInfo] | None = None
    episode_notes: list[str] = dataclasses.field(default_factory=list)

    def types(self) -> dict[str, str]:
        """``{topic: message type}``."""
        return {t.topic: t.msgtype for t in self.topics}


@dataclasses.dataclass
class TopicSuggestion:
    """Topics for ``snapflow train`` by message type; a role with several candidates is open."""

    camera_topics: list[str]
    state_candidates: list[str]
    action_candidates: list[str]
    task_candidates: list[str]
    marker_candidates: list[str]
    types: dict[str, str] = dataclasses.field(default_factory=dict)  # topic -> message type
    # PoseStamped / PoseArray topics, then Float64MultiArray ones (which may be the action)
    environment_state_candidates: list[str] = dataclasses.field(default_factory=list)

    @property
    def state_topic(self) -> str | None:
        """The state topic if exactly one candidate."""
        return self.state_candidates[0] if len(self.state_candidates) == 1 else None

    @property
    def action_topic(self) -> str | None:
        """The action topic if exactly one candidate."""
        return self.action_candidates[0] if len(self.action_candidates) == 1 else None

    @property
    def environment_state_topics(self) -> list[str]:
        """The pose topics (PoseStamped / PoseArray): object poses to train on."""
        return [t for t in self.environment_state_candidates
                if self.types.get(t) in (POSE_STAMPED, POSE_ARRAY)]

    @property
    def task_topic(self) -> str | None:
        """The task topic if exactly one candidate."""
        return self.task_candidates[0] if len(self.task_candidates) == 1 else None


def _storage(path: Path) -> str:
    if path.is_file():
        return "mcap" if path.suffix == ".mcap" else "sqlite3"
    try:
        metadata = yaml.safe_load((path / "metadata.yaml").read_text()) or {}
        storage = metadata["rosbag2_bagfile_information"]["storage_identifier"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        storage = ""
    if not storage:  # older metadata: the storage files tell
        storage = "mcap" if any(path.glob("*.mcap*")) else "sqlite3"
    return str(storage)


def inspect_bag(path: str | Path) -> BagInfo:
    """Storage, duration and per-topic type, count and rate of one bag (receive times only)."""
    path = Path(path)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    try:
        with Reader(path) as reader:
            connections = list(reader.connections)
            for connection, receive_ns, _ in reader.messages():
                first.setdefault(connection.topic, receive_ns)
                last[connection.topic] = receive_ns
            start, duration, count = reader.start_time, reader.duration, reader.message_count
    except _STORAGE_ERRORS as exc:
        raise CorruptBagError(f"cannot open the bag ({type(exc).__name__}: {exc})",
                              path=path) from exc
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    for connection in connections:
        counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
        types.setdefault(connection.topic, connection.msgtype)
    topics = []
    for topic in sorted(types):
        span = last.get(topic, 0) - first.get(topic, 0)
        rate = (counts[topic] - 1) * 1e9 / span if span > 0 and counts[topic] > 1 else 0.0
        topics.append(TopicInfo(topic, types[topic], counts[topic], rate))
    return BagInfo(path=path, storage=_storage(path), duration_s=duration / 1e9 if count else 0.0,
                   start_ns=start if count else 0, message_count=count, topics=topics)


def _is_command(topic: str) -> bool:
    return any(word in topic.lower() for word in _COMMAND_WORDS)


def suggest_topics(infos: Iterable[BagInfo]) -> TopicSuggestion:
    """Camera, state, action, task and marker topics of the bags, chosen by message type."""
    types: dict[str, str] = {}
    for info in infos:
        for topic, msgtype in info.types().items():
            types.setdefault(topic, msgtype)
    images = sorted(t for t, m in types.items() if m in (IMAGE, COMPRESSED_IMAGE))
    # image_transport republishes a raw camera as <topic>/compressed: one camera, not two.
    cameras = [t for t in images
               if not (t.endswith("/compressed") and t[: -len("/compressed")] in images)]
    joint_states = sorted(t for t, m in types.items() if m == JOINT_STATE)
    states = [t for t in joint_states if not _is_command(t)]
    commands = [t for t in joint_states if _is_command(t)]
    actions = [*commands, *sorted(t for t, m in types.items()
                                  if m in (JOINT_TRAJECTORY, FLOAT64_MULTI_ARRAY))]
    strings = sorted(t for t, m in types.items() if m == STRING)
    tasks = [t for t in strings if any(word in t.lower() for word in _TASK_WORDS)]
    markers = sorted(t for t, m in types.items() if m == BOOL)
    markers += [t for t in strings if "episode" in t.lower() or "marker" in t.lower()]
    poses = sorted(t for t, m in types.items() if m in (POSE_STAMPED, POSE_ARRAY))
    arrays = sorted(t for t, m in types.items() if m == FLOAT64_MULTI_ARRAY)
    return TopicSuggestion(cameras, states, actions, tasks, markers, types,
                           environment_state_candidates=[*poses, *arrays])


def split_episodes(path: str | Path, config: BagTopicsConfig) -> tuple[list[EpisodeInfo],
                                                                     list[str]]:
    """Episodes of one bag as training cuts them, and the warnings of those it skips.

    Raises :class:`~snapflow_ros.data.bag_reader.BagError` if ``config`` cannot read the bag.
    """
    small = dataclasses.replace(config, image_height=8, image_width=8)  # decode, keep little
    result = align_streams(read_bag(path, small), small)
    episodes = [EpisodeInfo(segment=e.segment, steps=len(e),
                            duration_s=len(e) / config.rate_hz, task=e.task)
                for e in result.episodes]
    return episodes, list(result.warnings)


def train_flags(config_data: dict, suggestion: TopicSuggestion,
                paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """The ``snapflow train`` arguments reading these bags, and notes on what is left open.

    ``config_data`` holds the topics already given (flags or config file); they win over the
    suggestion.
    """
    flags = ["--bags", *map(str, paths)]
    notes: list[str] = []
    cameras = config_data.get("camera_topics") or suggestion.camera_topics
    if not cameras:
        notes.append("no sensor_msgs/Image or CompressedImage topic: no camera to train on")
    for topic in cameras:
        flags += ["--camera-topic", str(topic)]
    for role, flag, candidates in (("state", "--state-topic", suggestion.state_candidates),
                                   ("action", "--action-topic", suggestion.action_candidates)):
        given = config_data.get(f"{role}_topic")
        if given:
            flags += [flag, str(given)]
        elif len(candidates) == 1:
            flags += [flag, candidates[0]]
        elif candidates:
            notes.append(f"{role}: several candidates, pick one with {flag}: "
                         + ", ".join(candidates))
        else:
            kinds = ("sensor_msgs/JointState" if role == "state" else
                     "a leader JointState, JointTrajectory or Float64MultiArray")
            notes.append(f"{role}: no {kinds} topic found")
    action_type = config_data.get("action_type")
    if action_type not in (None, "", "auto"):
        action_topic = config_data.get("action_topic") or suggestion.action_topic
        recorded = suggestion.types.get(action_topic or "")
        if recorded in (None, ACTION_MSGTYPES.get(action_type)):
            flags += ["--action-type", str(action_type)]
        else:
            notes.append(f"action_type {action_type} requests {ACTION_MSGTYPES[action_type]} "
                         f"but {action_topic} records {recorded}: --action-type left out (the "
                         "type is taken from the bag)")
    task = config_data.get("task_topic") or suggestion.task_topic
    if task:
        flags += ["--set", f"task_topic={task}"]
    marker = config_data.get("episode_marker_topic")
    if marker:
        flags += ["--set", f"episode_marker_topic={marker}"]
    elif suggestion.marker_candidates:
        notes.append("episode marker topic(s) "
                     + ", ".join(suggestion.marker_candidates)
                     + ": add --set episode_marker_topic=T to split episodes on them")
    environment = list(config_data.get("environment_state_topics") or
                       suggestion.environment_state_topics)
    if environment:
        flags += ["--environment-state-topics", *map(str, environment)]
    action = config_data.get("action_topic") or suggestion.action_topic
    others = [t for t in suggestion.environment_state_candidates
              if t not in environment and t != action]
    if not config_data.get("environment_state_topics") and environment:
        notes.append("environment state (object poses) from " + ", ".join(environment)
                     + ": the policy will need them at run time too; drop "
                     "--environment-state-topics to train without")
    if others:
        notes.append("Float64MultiArray topic(s) " + ", ".join(others) + " may be environment "
                     "state: add them to --environment-state-topics to train on them")
    if "rate_hz" in config_data:
        flags += ["--rate-hz", str(config_data["rate_hz"])]
    if "split_on_gap_s" in config_data:
        flags += ["--set", f"split_on_gap_s={config_data['split_on_gap_s']}"]
    return flags, notes
