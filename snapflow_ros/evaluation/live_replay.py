# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live replay evaluation results: trajectories the policy node sent, scored against recordings.

The replay itself (held-out bags played into the running policy node by the bag player node,
every ``trajectory_msgs/JointTrajectory`` it publishes recorded) runs over ROS 2 in
:mod:`snapflow_ros.nodes.harness.live_replay`. This module holds its settings
(:class:`LiveReplayConfig`), what it records (:class:`ReplayRecording`, one per bag) and the
scoring, none of which needs ROS or torch.

Time: the bag player writes the system time at which it played its first bag time
(``timeline_file``), so a system time ``t`` maps to bag time ``first + rate * (t - start)``;
the median difference between the state stream's stamps and its bag receive times turns that
into episode (stamp) time. Each trajectory point is due at ``header.stamp + time_from_start``
(the node's clock: system time, so the node must not use sim time) and is the position to
reach then: it is compared with the recorded action of the step that ends at that episode time,
stamped one period earlier (linear interpolation on the episode's grid; docs/design.md,
"Command timing"). Compared at its own time, a perfect node scored a one-step shift. Points
outside a scored episode are padded; a trajectory without any point inside one (a hold before
the episode starts) is left out. One trajectory is one sample of
:func:`~snapflow_ros.evaluation.metrics.summarize`, so the scores include everything the robot
would see: latency, chunk scheduling, blending and the safety guard.

Latency (ms): ``latency_ms_*`` is the end-to-end latency the node measures itself (its
``~/latency_ms`` topic, ``input_to_publish``): from the arrival of the camera frame it used to
the publication of the command. ``camera_age_at_publish_ms_*`` is the trajectory header stamp
minus the stamp of the newest camera frame played before it (a lower bound: a newer frame may
have arrived during inference); ``delivery_ms_*`` is receive time minus header stamp of the
trajectories in this process (it includes this process's own queueing on a busy machine).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.evaluation.metrics import latency_percentiles_ms, per_sample_mse, summarize


class LiveReplayError(ConfigError):
    """The policy node or the bag player did not do what the replay needs."""


@dataclasses.dataclass(frozen=True)
class LiveReplayConfig:
    """How the live replay drives the policy node and the bag player."""

    node_name: str = param("snapflow_policy", "Name of the policy node.")
    node_running: bool = param(False, "Use a running node instead of starting one.")
    rate: float = param(1.0, "Playback speed factor.", low=0.05, high=100.0)
    n_act: int = param(0, "Actions executed per chunk (0: the node's setting).", low=0)
    seed: int = param(0, "Seed of the node's sampling noise (-1: fresh noise).", low=-1)
    device: str = param("cpu", "The node's inference device: auto, cpu or cuda.",
                        choices=("auto", "cpu", "cuda"))
    startup_timeout_s: float = param(120.0, "Wait this long for the node to appear (s).",
                                     low=1.0)
    transition_timeout_s: float = param(120.0, "Wait this long for configure etc. (s).",
                                        low=1.0)
    settle_s: float = param(0.5, "Keep recording this long after the last message (s).",
                            low=0.0, high=60.0)

    def __post_init__(self) -> None:
        check_config(self)


@dataclasses.dataclass
class ReceivedTrajectory:
    """One JointTrajectory as received: times in ns of this machine's system clock."""

    receive_ns: int
    stamp_ns: int
    joint_names: tuple[str, ...]
    times_from_start_ns: np.ndarray  # (P,) int64
    positions: np.ndarray  # (P, J) float64


@dataclasses.dataclass
class ReplayRecording:
    """One bag's replay: the player's timeline, the bag's camera times, what the node sent."""

    bag: Path
    system_start_ns: int = 0  # system time at which bag time bag_first_ns was played
    bag_first_ns: int = 0
    header_offset_ns: float = 0.0  # episode (stamp) time minus bag receive time, median
    camera_receive_ns: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0, np.int64))  # bag receive times of camera frames
    camera_stamp_ns: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0, np.int64))  # their stamps (episode time)
    trajectories: list[ReceivedTrajectory] = dataclasses.field(default_factory=list)
    node_latency_ms: list[float] = dataclasses.field(default_factory=list)

    def episode_time_ns(self, system_ns: np.ndarray | float, rate: float) -> np.ndarray:
        """Episode (stamp) time (ns) of system times ``system_ns`` (ns) during this replay."""
        elapsed = np.asarray(system_ns, dtype=np.float64) - self.system_start_ns
        return self.bag_first_ns + rate * elapsed + self.header_offset_ns

    def set_timeline(self, record: dict) -> None:
        """Take the bag player's timeline record (``system_time_ns``, ``bag_first_ns``)."""
        self.system_start_ns = int(record["system_time_ns"])
        self.bag_first_ns = int(record["bag_first_ns"])


def read_timeline(path: str | Path) -> dict:
    """The first pass recorded by the bag player in its ``timeline_file``."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8").splitlines()[0])
    except (OSError, IndexError, ValueError) as exc:
        raise LiveReplayError(f"the bag player wrote no timeline to {path}: {exc}") from exc


def recorded_action_at(episode, bag_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recorded actions ``(P, A)`` to reach at episode times ``bag_ns`` (P,), and which lie inside.

    The action of step ``t`` (stamped ``t``) is reached when the step ends, one period later.
    """
    grid = episode.timestamps_ns.astype(np.float64) + 1e9 / episode.rate_hz
    inside = (bag_ns >= grid[0]) & (bag_ns <= grid[-1])
    actions = np.stack([np.interp(bag_ns, grid, episode.action[:, j].astype(np.float64))
                        for j in range(episode.action.shape[1])], axis=-1)
    return actions, inside


def score_recordings(recordings: Sequence[ReplayRecording], episodes_by_bag: dict,
                     action_names: Sequence[str], rate: float) -> dict:
    """Metrics of the received trajectories against the recorded actions (one sample each).

    ``episodes_by_bag`` maps a bag path (str) to its scored episodes.
    """
    predicted, recorded, pads = [], [], []
    camera_age_at_publish, delivery, node_latency = [], [], []
    names = tuple(action_names)
    for recording in recordings:
        episodes = episodes_by_bag.get(str(recording.bag), [])
        order = np.argsort(recording.camera_receive_ns, kind="stable")
        camera_receive = np.asarray(recording.camera_receive_ns, np.float64)[order]
        camera_stamp = np.asarray(recording.camera_stamp_ns, np.float64)[order]
        node_latency.extend(recording.node_latency_ms)
        for trajectory in recording.trajectories:
            if not len(trajectory.times_from_start_ns):
                continue
            positions = _in_order(trajectory, names)
            bag_ns = recording.episode_time_ns(
                trajectory.stamp_ns + trajectory.times_from_start_ns.astype(np.float64), rate)
            target = np.zeros_like(positions)
            valid = np.zeros(len(bag_ns), dtype=bool)
            for episode in episodes:
                actions, inside = recorded_action_at(episode, bag_ns)
                take = inside & ~valid
                target[take] = actions[take]
                valid |= inside
            if not valid.any():
                continue
            predicted.append(positions)
            recorded.append(target)
            pads.append(~valid)
            delivery.append((trajectory.receive_ns - trajectory.stamp_ns) / 1e6)
            # The newest camera frame played before the command was stamped.
            stamped = float(recording.episode_time_ns(trajectory.stamp_ns, rate))
            newest = np.searchsorted(camera_receive, stamped - recording.header_offset_ns,
                                     side="right") - 1
            if newest >= 0:
                camera_age_at_publish.append((stamped - camera_stamp[newest]) / rate / 1e6)
    if not predicted:
        raise LiveReplayError(
            "the policy node published no trajectory during the held-out episodes; see its log "
            "(inputs rejected or stale? n_act larger than the chunk?)")
    length = max(len(p) for p in predicted)
    pred = np.zeros((len(predicted), length, len(names)))
    rec = np.zeros_like(pred)
    is_pad = np.ones((len(predicted), length), dtype=bool)
    for row, (p, r, pad) in enumerate(zip(predicted, recorded, pads)):
        pred[row, :len(p)], rec[row, :len(r)], is_pad[row, :len(pad)] = p, r, pad
    summary = summarize(pred, rec, is_pad, action_names=names, latencies_ms=node_latency)
    for label, values in (("camera_age_at_publish_ms", camera_age_at_publish),
                          ("delivery_ms", delivery)):
        summary[f"{label}_p50"], summary[f"{label}_p95"] = latency_percentiles_ms(values)
    summary["num_trajectories"] = len(predicted)
    summary["per_sample_mse"] = [float(v) for v in per_sample_mse(pred, rec, is_pad)]
    return summary


def _in_order(trajectory: ReceivedTrajectory, names: tuple[str, ...]) -> np.ndarray:
    """The trajectory's positions ``(P, A)`` with columns in the recordings' action order."""
    if tuple(trajectory.joint_names) == names:
        return trajectory.positions
    index = {n: i for i, n in enumerate(trajectory.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise LiveReplayError(f"the node commands joints {list(index)}, without {missing} that "
                              "the recordings hold")
    return trajectory.positions[:, [index[n] for n in names]]


def recording_from_bag(bag: Path, topics) -> ReplayRecording:
    """A :class:`ReplayRecording` with the bag's camera times and stamp offset filled in."""
    from snapflow_ros.data.bag_reader import read_bag

    streams = read_bag(bag, topics)
    state = streams.state
    offset = float(np.median(state.stamps_ns - state.receive_ns)) if len(state) else 0.0
    receive = np.concatenate([s.receive_ns for s in streams.cameras.values()])
    stamps = np.concatenate([s.stamps_ns for s in streams.cameras.values()])
    return ReplayRecording(bag=Path(bag), header_offset_ns=offset, camera_receive_ns=receive,
                           camera_stamp_ns=stamps)
