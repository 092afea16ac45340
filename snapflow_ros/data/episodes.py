# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Episodes of resampled demonstrations, and loading them from rosbag2 recordings.

:func:`load_episodes` finds the bags, reads and aligns each (or takes it from the on-disk cache)
and returns :class:`Episode` objects plus a :class:`ReadSummary` of what was read, dropped and
skipped. No torch here: the simulator environment can load episodes too.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from snapflow_ros.data.alignment import EpisodeError, align_streams
from snapflow_ros.data.bag_reader import (
    BagError,
    BagStreams,
    CorruptBagError,
    find_bags,
    read_bag,
)
from snapflow_ros.data.config import BagTopicsConfig

LOGGER = logging.getLogger("snapflow_ros.data")


@dataclasses.dataclass
class Episode:
    """One demonstration resampled at ``rate_hz``: T steps of images, state and action.

    ``environment_state`` (object poses ...) is ``(T, E)`` float32 in
    ``environment_state_names`` order, shape ``(T, 0)`` when the config reads none.
    """

    images: dict[str, np.ndarray]  # camera key -> (T, h, w, 3) uint8 RGB
    state: np.ndarray  # (T, S) float32, robot units (rad, m)
    action: np.ndarray  # (T, A) float32, robot units
    timestamps_ns: np.ndarray  # (T,) int64 grid times on the bag's clock
    task: str
    source: Path  # the bag it came from
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    rate_hz: float
    segment: int = 0  # episode number within its bag
    environment_state: np.ndarray | None = None  # (T, E) float32; None -> (T, 0)
    environment_state_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.environment_state is None:
            self.environment_state = np.zeros((len(self.timestamps_ns), 0), np.float32)
        if self.environment_state.shape != (len(self.timestamps_ns),
                                            len(self.environment_state_names)):
            raise ValueError(
                f"environment_state of shape {self.environment_state.shape} does not match "
                f"{len(self.timestamps_ns)} steps of {len(self.environment_state_names)} names")

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    @property
    def camera_keys(self) -> tuple[str, ...]:
        """Camera keys, in config order."""
        return tuple(self.images)

    @property
    def timestamps_s(self) -> np.ndarray:
        """(T,) float64 seconds since the episode's first sample."""
        return (self.timestamps_ns - self.timestamps_ns[0]).astype(np.float64) / 1e9

    @property
    def name(self) -> str:
        """``<bag name>`` or ``<bag name>#<segment>`` for messages and reports."""
        return self.source.name + (f"#{self.segment}" if self.segment else "")


@dataclasses.dataclass
class BagReport:
    """What one bag contributed (stored in the cache so a cache hit reports the same)."""

    path: Path
    episodes: int = 0
    samples: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    stale_by_topic: dict[str, int] = dataclasses.field(default_factory=dict)
    non_finite_by_topic: dict[str, int] = dataclasses.field(default_factory=dict)  # left out
    topic_messages: dict[str, int] = dataclasses.field(default_factory=dict)
    topic_span_s: dict[str, float] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
    from_cache: bool = False


@dataclasses.dataclass
class ReadSummary:
    """Totals of a :func:`load_episodes` call; :meth:`format` prints them."""

    bags: int = 0
    episodes: int = 0
    samples: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> samples
    stale_by_topic: dict[str, int] = dataclasses.field(default_factory=dict)
    non_finite_by_topic: dict[str, int] = dataclasses.field(default_factory=dict)
    topic_messages: dict[str, int] = dataclasses.field(default_factory=dict)
    topic_rates_hz: dict[str, float] = dataclasses.field(default_factory=dict)
    skipped_bags: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    skipped_episodes: list[str] = dataclasses.field(default_factory=list)
    cache_hits: int = 0
    seconds: float = 0.0

    @classmethod
    def from_reports(cls, reports: list[BagReport], skipped_bags: list[tuple[Path, str]],
                     seconds: float) -> ReadSummary:
        """Aggregate per-bag reports; rates are total messages over total time span."""
        dropped: collections.Counter = collections.Counter()
        stale: collections.Counter = collections.Counter()
        non_finite: collections.Counter = collections.Counter()
        messages: collections.Counter = collections.Counter()
        intervals: collections.Counter = collections.Counter()
        spans: collections.Counter = collections.Counter()
        for report in reports:
            dropped.update(report.dropped)
            stale.update(report.stale_by_topic)
            non_finite.update(report.non_finite_by_topic)
            messages.update(report.topic_messages)
            for topic, span in report.topic_span_s.items():
                if span > 0:
                    intervals[topic] += report.topic_messages.get(topic, 0) - 1
                    spans[topic] += span
        return cls(
            bags=len(reports),
            episodes=sum(r.episodes for r in reports),
            samples=sum(r.samples for r in reports),
            dropped=dict(dropped),
            stale_by_topic=dict(stale),
            non_finite_by_topic=dict(non_finite),
            topic_messages=dict(messages),
            topic_rates_hz={t: intervals[t] / spans[t] if spans[t] else 0.0 for t in messages},
            skipped_bags=list(skipped_bags),
            skipped_episodes=[w for r in reports for w in r.warnings],
            cache_hits=sum(r.from_cache for r in reports),
            seconds=seconds,
        )

    def to_dict(self) -> dict:
        """JSON-serialisable form (paths as strings)."""
        data = dataclasses.asdict(self)
        data["skipped_bags"] = [[str(path), reason] for path, reason in self.skipped_bags]
        return data

    def format(self) -> str:
        """Human-readable multi-line summary."""
        lines = [
            f"bags read: {self.bags} ({self.cache_hits} from cache), skipped: "
            f"{len(self.skipped_bags)}; {self.seconds:.1f} s",
            f"episodes: {self.episodes}, samples: {self.samples}",
        ]
        total = sum(self.dropped.values())
        lines.append(f"dropped samples: {total}" + (
            " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) + ")"
            if total else ""))
        for topic, count in sorted(self.stale_by_topic.items()):
            lines.append(f"  stale {topic}: {count}")
        for topic, count in sorted(self.non_finite_by_topic.items()):
            lines.append(f"ignored {count} message(s) with NaN / inf values on {topic}")
        if self.topic_messages:
            width = max(len(t) for t in self.topic_messages)
            lines.append("topics:")
            for topic in sorted(self.topic_messages):
                lines.append(f"  {topic:<{width}}  {self.topic_messages[topic]:>8d} msgs  "
                             f"{self.topic_rates_hz.get(topic, 0.0):8.1f} Hz")
        for path, reason in self.skipped_bags:
            lines.append(f"skipped bag {path}: {reason}")
        for warning in self.skipped_episodes:
            lines.append(f"skipped {warning}")
        return "\n".join(lines)


def build_episodes(streams: BagStreams, config: BagTopicsConfig) -> tuple[list[Episode],
                                                                          BagReport]:
    """Align one bag's streams and gather each episode's arrays."""
    result = align_streams(streams, config)
    episodes = []
    for samples in result.episodes:
        images = {key: np.ascontiguousarray(stream.values[samples.indices[stream.topic]])
                  for key, stream in streams.cameras.items()}
        episodes.append(Episode(
            images=images,
            state=np.ascontiguousarray(streams.state.values[samples.indices[streams.state.topic]]),
            action=np.ascontiguousarray(
                streams.action.values[samples.indices[streams.action.topic]]),
            timestamps_ns=samples.grid_ns,
            task=samples.task,
            source=streams.path,
            state_names=streams.state_names,
            action_names=streams.action_names,
            rate_hz=config.rate_hz,
            segment=samples.segment,
            environment_state=_environment_rows(streams, samples.indices),
            environment_state_names=streams.environment_state_names,
        ))
    all_streams = streams.all_streams()
    report = BagReport(
        path=streams.path,
        episodes=len(episodes),
        samples=sum(len(e) for e in episodes),
        dropped=dict(result.dropped),
        stale_by_topic=dict(result.stale_by_topic),
        non_finite_by_topic={s.topic: s.non_finite for s in all_streams if s.non_finite},
        topic_messages={s.topic: len(s) for s in all_streams},
        topic_span_s={s.topic: float(s.stamps_ns[-1] - s.stamps_ns[0]) / 1e9 if len(s) else 0.0
                      for s in all_streams},
        warnings=list(result.warnings),
    )
    return episodes, report


def _environment_rows(streams: BagStreams, indices: dict[str, np.ndarray]) -> np.ndarray:
    """``(T, E)`` float32: each environment-state stream at the sample indices, in topic order."""
    length = len(next(iter(indices.values())))
    parts = [stream.values[indices[topic]] for topic, stream in streams.environment.items()]
    if not parts:
        return np.zeros((length, 0), np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def _decode_bag(bag: Path, config: BagTopicsConfig
                ) -> tuple[list[Episode], BagReport] | CorruptBagError:
    """Read and align one bag; a corrupt bag is returned, not raised (the caller decides)."""
    try:
        streams = read_bag(bag, config)
    except CorruptBagError as exc:
        return exc
    return build_episodes(streams, config)


def _decode_bags(bags: list[Path], config: BagTopicsConfig, workers: int) -> Iterator:
    """:func:`_decode_bag` of each bag, in order; in ``workers`` processes when > 1."""
    if workers <= 1 or len(bags) <= 1:
        for bag in bags:
            yield _decode_bag(bag, config)
        return
    # spawn, not fork: the parent may hold torch / OpenMP threads that a fork would break.
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(bags)), mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from executor.map(_decode_bag, bags, itertools.repeat(config))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def load_episodes(bag_paths: str | Path | Iterable[str | Path], config: BagTopicsConfig,
                  progress: bool = True, *, cache_dir: str | Path | None = None,
                  workers: int = 1) -> tuple[list[Episode], ReadSummary]:
    """Read every bag under ``bag_paths`` into episodes, with a summary of the read.

    ``cache_dir``: keep each bag's decoded episodes there (keyed by bag content and config), so
    a second call does not decode again. ``workers`` > 1 decodes bags in that many processes.
    Corrupt bags raise or are skipped as ``config.on_corrupt_bag`` says; skipped episodes are
    logged. Raises :class:`EpisodeError` if no episode is left, and :class:`BagError` if bags
    disagree on joint names.
    """
    from snapflow_ros.data.episode_cache import EpisodeCache

    started = time.perf_counter()
    bags = find_bags(bag_paths)
    cache = EpisodeCache(cache_dir, config) if cache_dir is not None else None
    cached = {bag: cache.load(bag) for bag in bags} if cache is not None else {}
    to_decode = [bag for bag in bags if cached.get(bag) is None]
    decoded = _decode_bags(to_decode, config, workers)
    episodes: list[Episode] = []
    reports: list[BagReport] = []
    skipped: list[tuple[Path, str]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(bags), desc="reading bags", unit="bag")
    try:
        for bag in bags:
            result = cached.get(bag) or next(decoded)
            if bar is not None:
                bar.update(1)
            if isinstance(result, CorruptBagError):
                if config.on_corrupt_bag == "fail":
                    raise result
                LOGGER.warning("skipping corrupt bag: %s", result)
                skipped.append((bag, result.problem))
                continue
            bag_episodes, report = result
            if cache is not None and not report.from_cache:
                cache.store(bag, bag_episodes, report)
            for warning in report.warnings:
                LOGGER.warning("skipping %s", warning)
            _check_consistent(episodes, bag_episodes)
            episodes.extend(bag_episodes)
            reports.append(report)
    finally:
        decoded.close()
        if bar is not None:
            bar.close()
    summary = ReadSummary.from_reports(reports, skipped, time.perf_counter() - started)
    if not episodes:
        first = bags[0] if bags else None
        raise EpisodeError(f"no usable episode in {len(bags)} bag(s)\n{summary.format()}",
                           path=first)
    return episodes, summary


def _check_consistent(loaded: list[Episode], new: list[Episode]) -> None:
    """All episodes must share joint and environment-state names (cameras: one config)."""
    if not loaded or not new:
        return
    reference, episode = loaded[0], new[0]
    for label in ("state_names", "action_names", "environment_state_names"):
        mine, theirs = getattr(episode, label), getattr(reference, label)
        if tuple(mine) != tuple(theirs):
            hint = ("every recording must track the same objects (the same number of poses "
                    "per environment-state topic)" if label == "environment_state_names" else
                    "set joint_names / action_joint_names in the config to pick the same joints")
            raise BagError(f"{label} {list(mine)} differ from {list(theirs)} in "
                           f"{reference.source}; {hint}", path=episode.source)
