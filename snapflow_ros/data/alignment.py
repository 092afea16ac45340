# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Resample the streams of one bag onto a fixed control-rate grid and cut it into episodes.

Sampling rule: at each grid time ``t`` every stream contributes its latest message stamped at or
before ``t``. A sample is kept only if every such message is at most ``tolerance_s`` old;
otherwise it is dropped, counted as ``"stale input"`` and, per topic, for each stream that was
too old.

Episodes (in this order of precedence):

- ``episode_marker_topic`` set, ``std_msgs/Bool``: an episode runs while the marker is true;
  it starts at a false -> true change (or the first true) and ends at the next false or at the
  end of the bag. Time outside episodes is not sampled.
- ``episode_marker_topic`` set, ``std_msgs/String``: ``start`` begins an episode (ending a
  running one), ``stop`` or ``end`` ends it (case and surrounding spaces ignored); any other
  value is an error.
- ``split_on_gap_s > 0``: a new episode starts wherever no message arrives on any sampled topic
  for longer than that.
- otherwise one bag is one episode.

An episode starts at its first instant where every stream has a message no older than the
tolerance. Episodes with fewer than ``min_episode_steps`` samples (counted as dropped
``"short episode"`` samples), or with none, are skipped with a warning naming the bag; they
never raise here (the loader raises only when no episode at all is left).

Only numpy is needed (no torch), so the simulator environment can use this module.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from snapflow_ros.data.bag_reader import BagError, BagStreams, TopicStream
from snapflow_ros.data.config import BagTopicsConfig

_NEVER = np.iinfo(np.int64).max


class EpisodeError(BagError):
    """Episodes cannot be delimited (e.g. an unknown marker value) or none is usable."""


@dataclasses.dataclass
class EpisodeSamples:
    """The kept samples of one episode: grid times and, per topic, the message index used."""

    grid_ns: np.ndarray  # (T,) int64
    indices: dict[str, np.ndarray]  # topic -> (T,) intp into that stream
    task: str
    segment: int  # episode number within the bag (0, 1, ...)

    def __len__(self) -> int:
        return len(self.grid_ns)


@dataclasses.dataclass
class AlignmentResult:
    """Episodes of one bag plus what was dropped, and why."""

    episodes: list[EpisodeSamples]
    dropped: collections.Counter  # reason ("stale input", "short episode") -> grid samples
    stale_by_topic: collections.Counter  # topic -> samples it made stale (may overlap)
    warnings: list[str]


def time_grid(start_ns: int, end_ns: int, period_ns: int) -> np.ndarray:
    """Grid times ``start + k * period`` (ns, int64) with ``start <= t < end``."""
    if end_ns <= start_ns:
        return np.zeros(0, dtype=np.int64)
    count = (end_ns - start_ns + period_ns - 1) // period_ns
    return start_ns + np.arange(count, dtype=np.int64) * period_ns


def latest_at_or_before(stamps_ns: np.ndarray, grid_ns: np.ndarray) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Index of the latest stamp ``<= t`` for each grid time (-1: none) and its age (ns).

    ``stamps_ns`` must be sorted; the age is ``_NEVER`` where there is no such stamp.
    """
    index = np.searchsorted(stamps_ns, grid_ns, side="right") - 1
    age = np.full(grid_ns.shape, _NEVER, dtype=np.int64)
    found = index >= 0
    age[found] = grid_ns[found] - stamps_ns[index[found]]
    return index, age


def episode_intervals(streams: BagStreams, config: BagTopicsConfig) -> list[tuple[int, int]]:
    """Episode time spans ``[start_ns, end_ns)`` of a bag, from markers, gaps or the whole bag."""
    required = [s for s in streams.required().values() if len(s)]
    if not required:
        return []
    first = min(int(s.stamps_ns[0]) for s in required)
    last = max(int(s.stamps_ns[-1]) for s in required) + 1
    if streams.marker is not None:
        return _marker_intervals(streams.marker, last, streams)
    if config.split_on_gap_s > 0:
        return _gap_intervals(required, int(round(config.split_on_gap_s * 1e9)), first, last)
    return [(first, last)]


def _marker_intervals(marker: TopicStream, last: int,
                      streams: BagStreams) -> list[tuple[int, int]]:
    intervals: list[tuple[int, int]] = []
    start: int | None = None
    for stamp, value in zip(marker.stamps_ns.tolist(), marker.values):
        if isinstance(value, (bool, np.bool_)):
            begin, end = bool(value), not value
        else:
            word = str(value).strip().lower()
            if word not in ("start", "stop", "end"):
                raise EpisodeError(
                    f"marker value {value!r} is neither 'start' nor 'stop'/'end'",
                    path=streams.path, topic=marker.topic)
            begin, end = word == "start", word != "start"
            if begin and start is not None:  # a new start closes the running episode
                intervals.append((start, stamp))
                start = None
        if begin and start is None:
            start = stamp
        elif end and start is not None:
            intervals.append((start, stamp))
            start = None
    if start is not None:
        intervals.append((start, max(last, start + 1)))
    return [(a, b) for a, b in intervals if b > a]


def _gap_intervals(required: list[TopicStream], gap_ns: int, first: int,
                   last: int) -> list[tuple[int, int]]:
    stamps = np.sort(np.concatenate([s.stamps_ns for s in required]))
    splits = np.nonzero(np.diff(stamps) > gap_ns)[0]
    starts = [first, *(int(stamps[i + 1]) for i in splits)]
    ends = [*(int(stamps[i]) + 1 for i in splits), last]
    return list(zip(starts, ends))


def align_streams(streams: BagStreams, config: BagTopicsConfig) -> AlignmentResult:
    """Resample ``streams`` on the ``rate_hz`` grid, episode by episode (see module doc)."""
    required = streams.required()
    dropped: collections.Counter = collections.Counter()
    stale_by_topic: collections.Counter = collections.Counter()
    warnings: list[str] = []
    empty = [topic for topic, s in required.items() if not len(s)]
    if empty:
        warnings.append(f"{streams.path}: topic(s) {empty} have no messages; skipped "
                        "(empty episode)")
        return AlignmentResult([], dropped, stale_by_topic, warnings)

    period = config.period_ns
    tolerance = int(round(config.tolerance_s * 1e9))
    episodes: list[EpisodeSamples] = []
    intervals = episode_intervals(streams, config)
    if not intervals and streams.marker is not None:
        warnings.append(f"{streams.path}: topic '{streams.marker.topic}' never starts an "
                        "episode (no true / 'start' message); skipped (empty episode)")
    for segment, (start, end) in enumerate(intervals):
        where = f"{streams.path}: episode {segment}"
        # First instant at which every stream has a message no older than the tolerance.
        ready = start
        for stream in required.values():
            fresh = np.searchsorted(stream.stamps_ns, start - tolerance, side="left")
            ready = max(ready, int(stream.stamps_ns[fresh]) if fresh < len(stream) else _NEVER)
        grid = time_grid(ready, end, period) if ready != _NEVER else time_grid(0, 0, 1)
        keep = np.ones(grid.shape, dtype=bool)
        indices: dict[str, np.ndarray] = {}
        for topic, stream in required.items():
            index, age = latest_at_or_before(stream.stamps_ns, grid)
            stale = age > tolerance
            if stale.any():
                stale_by_topic[topic] += int(stale.sum())
            keep &= ~stale
            indices[topic] = index
        if not keep.all():
            dropped["stale input"] += int((~keep).sum())
        grid = grid[keep]
        indices = {topic: index[keep] for topic, index in indices.items()}
        if len(grid) == 0:
            warnings.append(f"{where}: no sample has all inputs within tolerance_s="
                            f"{config.tolerance_s}; skipped (empty episode)")
            continue
        if len(grid) < config.min_episode_steps:
            warnings.append(f"{where}: {len(grid)} steps < min_episode_steps="
                            f"{config.min_episode_steps}; skipped (short episode)")
            dropped["short episode"] += len(grid)
            continue
        task = _episode_task(streams.task, int(grid[0]), end, config.default_task)
        episodes.append(EpisodeSamples(grid, indices, task, segment))
    return AlignmentResult(episodes, dropped, stale_by_topic, warnings)


def _episode_task(task: TopicStream | None, start_ns: int, end_ns: int, default: str) -> str:
    """Task in effect at the episode start, else the first one sent during it, else default."""
    if task is None or not len(task):
        return default
    index = int(np.searchsorted(task.stamps_ns, start_ns, side="right")) - 1
    if index < 0:
        index = 0
        if int(task.stamps_ns[0]) >= end_ns:
            return default
    return str(task.values[index]) or default
