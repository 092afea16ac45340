# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS-free half of the bag player: which messages to play, and when.

A recording is played as raw CDR bytes in bag-time order; the message with bag receive time
``t`` is due ``(t - t_first) / rate`` seconds of wall time after playback starts, where
``t_first`` is the bag start plus ``start_offset_s``. :class:`BagPlayback` reads a bag with the
``rosbags`` library and yields ``(due_s, message)``; :class:`ReplayTimeline` maps wall time to
bag time (for ``/clock``); :func:`sleep_until` waits precisely. The node in
:mod:`snapflow_ros.nodes.bag_player_node` only publishes. Neither torch nor rclpy is imported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from snapflow_ros.config_fields import ConfigError, check_config, param


@dataclasses.dataclass(frozen=True)
class BagPlayerConfig:
    """What the bag player plays, how fast, and what it does at the end."""

    bag: str = param("", "The recording: a rosbag2 directory or a single .mcap / .db3 file.")
    rate: float = param(1.0, "Playback speed factor (2.0: twice as fast as recorded).",
                        low=0.01, high=1000.0)
    start_offset_s: float = param(0.0, "Skip this much of the recording's start (s).", low=0.0)
    loop: bool = param(False, "Start again from the beginning after the last message.")
    topics: tuple[str, ...] = param((), "Topics to play (empty: every topic in the bag).")
    remap: tuple[str, ...] = param(
        (), "Topic renames, each 'from:=to' (bag topic -> published topic).")
    publish_clock: bool = param(
        False, "Publish rosgraph_msgs/Clock on /clock with the bag time being played (for "
               "nodes with use_sim_time).")
    clock_rate_hz: float = param(100.0, "Rate of /clock messages (Hz).", low=1.0, high=10000.0)
    qos_reliable: bool = param(
        True, "RELIABLE publishers (else BEST_EFFORT; Fast DDS then drops raw images > ~512 KB "
              "unless the shared-memory transport is configured).")
    qos_depth: int = param(100, "History depth of every publisher.", low=1, high=100000)
    delay_s: float = param(0.0, "Wait this long before the first message (s), e.g. for "
                                "subscribers to connect.", low=0.0, high=3600.0)
    wait_for_subscribers: int = param(
        0, "Before playing, wait until every played topic has at least this many subscribers "
           "(0: do not wait).", low=0, high=1000)
    wait_timeout_s: float = param(
        30.0, "Give up waiting for subscribers after this long and play anyway (s).",
        low=0.0, high=3600.0)
    exit_when_done: bool = param(
        True, "Exit (code 0) after the last message; else stay idle until stopped.")
    progress_period_s: float = param(2.0, "Log progress this often (s); 0 disables.",
                                     low=0.0, high=3600.0)
    timeline_file: str = param(
        "", "Append one JSON line per pass here: the system time (ns) at which bag time "
            "bag_first_ns was played, and the rate, so tools can map commands to bag time "
            "(empty: none).")

    def __post_init__(self) -> None:
        check_config(self)
        parse_remaps(self.remap)
        if len(set(self.topics)) != len(self.topics):
            raise ConfigError(f"topics has duplicates: {list(self.topics)}")


def parse_remaps(entries: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["/a:=/b", ...]`` -> ``{"/a": "/b"}``; raises :class:`ConfigError` on a bad entry."""
    remaps: dict[str, str] = {}
    for entry in entries:
        source, sep, target = str(entry).partition(":=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ConfigError(f"remap entry {entry!r} must look like 'from:=to'")
        if source in remaps:
            raise ConfigError(f"remap names topic {source!r} twice")
        remaps[source] = target
    return remaps


@dataclasses.dataclass(frozen=True)
class PlayedTopic:
    """One topic as played: bag name, published name, message type, message count."""

    bag_topic: str
    topic: str
    msgtype: str
    count: int


@dataclasses.dataclass(frozen=True)
class BagMessage:
    """One recorded message: bag receive time (ns), published topic, type and raw CDR bytes."""

    bag_time_ns: int
    topic: str
    msgtype: str
    data: bytes


class BagPlaybackError(ConfigError):
    """The bag cannot be played as configured (missing, unreadable, topic not in it)."""


def replay_due_s(bag_time_ns: int, first_ns: int, rate: float) -> float:
    """Wall seconds after playback start at which a message of bag time ``bag_time_ns`` is due."""
    return (bag_time_ns - first_ns) / 1e9 / rate


class BagPlayback:
    """An opened recording and the messages to play from it, in bag-time order."""

    def __init__(self, config: BagPlayerConfig) -> None:
        from rosbags.rosbag2 import Reader

        if not config.bag:
            raise BagPlaybackError("parameter 'bag' is empty: name the recording to play")
        path = Path(config.bag)
        if not path.exists():
            raise BagPlaybackError(f"{path}: no such file or directory")
        if path.is_dir() and not (path / "metadata.yaml").is_file():
            raise BagPlaybackError(f"{path}: not a rosbag2 directory (no metadata.yaml)")
        self.config = config
        self.path = path
        self._reader_cls = Reader
        try:
            with Reader(path) as reader:
                connections = list(reader.connections)
                self.bag_start_ns = int(reader.start_time)
                self.bag_end_ns = int(reader.end_time)
        except Exception as exc:  # rosbags raises many types for damaged files
            raise BagPlaybackError(f"{path}: cannot open the recording ({type(exc).__name__}: "
                                   f"{exc})") from exc
        present: dict[str, tuple[str, int]] = {}
        for connection in connections:
            msgtype, count = present.get(connection.topic, (connection.msgtype, 0))
            present[connection.topic] = (msgtype, count + connection.msgcount)
        selected = list(config.topics) or sorted(present)
        missing = [t for t in selected if t not in present]
        if missing:
            raise BagPlaybackError(
                f"{path}: topic(s) {missing} not in the recording (it has: "
                f"{', '.join(sorted(present)) or 'no topics'})")
        remaps = parse_remaps(config.remap)
        unused = sorted(set(remaps) - set(selected))
        if unused:
            raise BagPlaybackError(f"remap names topic(s) {unused} that are not played")
        self.topics = [PlayedTopic(t, remaps.get(t, t), present[t][0], present[t][1])
                       for t in selected]
        self._connections = [c for c in connections if c.topic in set(selected)]
        self.first_ns = self.bag_start_ns + int(round(config.start_offset_s * 1e9))
        if self.first_ns > self.bag_end_ns:
            raise BagPlaybackError(
                f"start_offset_s={config.start_offset_s} is past the end of the recording "
                f"({self.duration_s:.3f} s long)")

    @property
    def duration_s(self) -> float:
        """Bag time span from its first to its last message (s)."""
        return (self.bag_end_ns - self.bag_start_ns) / 1e9

    @property
    def play_duration_s(self) -> float:
        """Wall time one pass takes at the configured rate (s)."""
        return replay_due_s(self.bag_end_ns, self.first_ns, self.config.rate)

    def message_count(self) -> int:
        """Messages of the played topics in the whole recording."""
        return sum(t.count for t in self.topics)

    def messages(self) -> Iterator[tuple[float, BagMessage]]:
        """One pass: ``(due_s, message)`` in bag-time order from ``first_ns`` on."""
        out = {t.bag_topic: t.topic for t in self.topics}
        try:
            with self._reader_cls(self.path) as reader:
                wanted = [c for c in reader.connections if c.topic in out]
                for connection, stamp, data in reader.messages(wanted, start=self.first_ns):
                    yield (replay_due_s(stamp, self.first_ns, self.config.rate),
                           BagMessage(int(stamp), out[connection.topic], connection.msgtype,
                                      bytes(data)))
        except BagPlaybackError:
            raise
        except Exception as exc:  # a truncated file fails mid-way, not at open
            raise BagPlaybackError(f"{self.path}: reading failed ({type(exc).__name__}: "
                                   f"{exc})") from exc


@dataclasses.dataclass
class ReplayTimeline:
    """Maps wall time (``time.monotonic`` seconds) to bag time (ns) during one pass."""

    wall_start_s: float
    first_ns: int
    rate: float
    system_start_ns: int = 0  # time.time_ns() at wall_start_s

    def record(self) -> dict:
        """The pass as a JSON-ready record: ``bag = bag_first_ns + rate * (t - system_ns)``."""
        return {"system_time_ns": self.system_start_ns, "bag_first_ns": self.first_ns,
                "rate": self.rate}

    def bag_time_ns(self, wall_s: float) -> int:
        """Bag time being played at wall time ``wall_s``."""
        return self.first_ns + int(round((wall_s - self.wall_start_s) * self.rate * 1e9))

    def wall_due_s(self, due_s: float) -> float:
        """Wall time at which a message due ``due_s`` after start must go out."""
        return self.wall_start_s + due_s


def sleep_until(deadline_s: float, *, now: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep,
                tick_period_s: float | None = None,
                on_tick: Callable[[float], None] | None = None,
                stopped: Callable[[], bool] | None = None,
                next_tick_s: float | None = None) -> float | None:
    """Wait until ``now() >= deadline_s``, calling ``on_tick(t)`` every ``tick_period_s``.

    Returns the time of the next tick still to come (pass it back as ``next_tick_s`` so ticks
    stay evenly spaced across calls), or None without ticks. Returns early when ``stopped()``.
    """
    tick = next_tick_s
    if tick_period_s is not None and tick is None:
        tick = now()
    while True:
        current = now()
        if tick is not None and current >= tick:
            if on_tick is not None:
                on_tick(current)
            tick += tick_period_s  # type: ignore[operator]
            if tick < current:  # fell behind (a loaded machine): do not burst
                tick = current + tick_period_s  # type: ignore[operator]
            continue
        if current >= deadline_s or (stopped is not None and stopped()):
            return tick
        wake = deadline_s if tick is None else min(deadline_s, tick)
        # Short sleeps near the deadline: time.sleep overshoots by ~0.1 ms to a few ms.
        sleep(min(max(wake - current, 0.0), 0.05))
