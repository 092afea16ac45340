# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Play a rosbag2 recording with its recorded timing, for machines without ``ros2 bag play``.

Messages are published as the raw CDR bytes stored in the bag, so every message type whose
Python package is installed plays without being decoded. Start it with ``ros2 run snapflow_ros
bag_player --ros-args -p bag:=/path/to/bag`` or ``python -m snapflow_ros.nodes.bag_player_node
--ros-args -p bag:=...``; parameters are the fields of
:class:`~snapflow_ros.data.bag_replay.BagPlayerConfig`. Header stamps are played as
recorded (old times): nodes that judge staleness by header stamps should run with
``use_sim_time`` and ``publish_clock:=true``.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.bag_replay import (
    BagPlayback,
    BagPlayerConfig,
    ReplayTimeline,
    sleep_until,
)
from snapflow_ros.nodes.node_process import stop_with_parent
from snapflow_ros.nodes.ros_parameters import config_from_parameters, declare_config_parameters

NODE_NAME = "bag_player"


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Type``; ImportError names the missing package."""
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:
        get_message = None
    if get_message is not None:
        return get_message(msgtype)
    parts = msgtype.split("/")
    if len(parts) == 2:  # "pkg/Type" as some tools write it
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        raise ImportError(f"cannot parse message type name {msgtype!r}")
    package, kind, name = parts
    module = importlib.import_module(f"{package}.{kind}")
    try:
        return getattr(module, name)
    except AttributeError as exc:
        raise ImportError(f"{package}.{kind} has no message {name}") from exc


class BagPlayerNode(Node):
    """Publishes the selected topics of one recording, paced by its receive times."""

    def __init__(self, node_name: str = NODE_NAME) -> None:
        super().__init__(node_name)
        declare_config_parameters(self, BagPlayerConfig)
        self.config: BagPlayerConfig = config_from_parameters(self, BagPlayerConfig)
        self.playback = BagPlayback(self.config)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.config.qos_depth,
            reliability=(ReliabilityPolicy.RELIABLE if self.config.qos_reliable
                         else ReliabilityPolicy.BEST_EFFORT),
            durability=DurabilityPolicy.VOLATILE)
        self._topic_publishers: dict[str, object] = {}
        skipped = []
        for topic in self.playback.topics:
            try:
                cls = message_class(topic.msgtype)
            except ImportError as exc:
                skipped.append(f"{topic.bag_topic} ({topic.msgtype}: {exc})")
                continue
            self._topic_publishers[topic.topic] = self.create_publisher(cls, topic.topic, qos)
        for entry in skipped:
            self.get_logger().warning(f"not playing {entry}: message package not installed")
        if not self._topic_publishers:
            raise ConfigError("no topic of the recording can be played (message packages "
                              f"missing for: {', '.join(skipped)})")
        self._clock_pub = (self.create_publisher(Clock, "/clock", 10)
                           if self.config.publish_clock else None)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.published = 0
        self.get_logger().info(
            f"playing {self.playback.path} ({self.playback.duration_s:.2f} s, "
            f"{self.playback.message_count()} messages on {len(self._topic_publishers)} topics) at "
            f"rate {self.config.rate}" + (", looping" if self.config.loop else ""))
        self._thread = threading.Thread(target=self._run, name="bag_playback", daemon=True)

    def start(self) -> None:
        """Start playback in its own thread (publishing is thread-safe in rclpy)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop playback and wait for its thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            self._wait_before_start()
            while not self._stop.is_set():
                self._play_once()
                if not self.config.loop or self._stop.is_set():
                    break
            if not self._stop.is_set():
                self.get_logger().info(f"done: published {self.published} messages")
        except BaseException as exc:  # reported by main(), which exits non-zero
            self.error = exc
            self.get_logger().error(f"playback failed: {exc}")
        finally:
            self.finished.set()

    def _wait_before_start(self) -> None:
        if self.config.delay_s > 0:
            self._stop.wait(self.config.delay_s)
        wanted = self.config.wait_for_subscribers
        if wanted <= 0:
            return
        deadline = time.monotonic() + self.config.wait_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            counts = {t: p.get_subscription_count() for t, p in self._topic_publishers.items()}
            if all(c >= wanted for c in counts.values()):
                return
            time.sleep(0.02)
        self.get_logger().warning(
            f"played anyway after {self.config.wait_timeout_s} s: fewer than {wanted} "
            "subscriber(s) on some topics")

    def _publish_clock(self, timeline: ReplayTimeline, wall_s: float) -> None:
        stamp_ns = timeline.bag_time_ns(wall_s)
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        self._clock_pub.publish(msg)

    def _play_once(self) -> None:
        timeline = ReplayTimeline(time.monotonic(), self.playback.first_ns, self.config.rate,
                                  system_start_ns=time.time_ns())
        if self.config.timeline_file:
            with open(self.config.timeline_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(timeline.record()) + "\n")
        tick_period = 1.0 / self.config.clock_rate_hz if self._clock_pub is not None else None
        on_tick = ((lambda wall: self._publish_clock(timeline, wall))
                   if self._clock_pub is not None else None)
        next_tick = None
        next_report = timeline.wall_start_s + (self.config.progress_period_s or float("inf"))
        total = self.playback.message_count()
        played = 0
        for due_s, message in self.playback.messages():
            next_tick = sleep_until(timeline.wall_due_s(due_s), tick_period_s=tick_period,
                                    on_tick=on_tick, stopped=self._stop.is_set,
                                    next_tick_s=next_tick)
            if self._stop.is_set():
                return
            publisher = self._topic_publishers.get(message.topic)
            if publisher is None:
                continue
            publisher.publish(message.data)
            played += 1
            self.published += 1
            now = time.monotonic()
            if now >= next_report:
                next_report = now + self.config.progress_period_s
                bag_s = (message.bag_time_ns - self.playback.bag_start_ns) / 1e9
                self.get_logger().info(
                    f"{played}/{total} messages, bag time {bag_s:.1f} / "
                    f"{self.playback.duration_s:.1f} s")


def main(args: list[str] | None = None) -> int:
    """Run the bag player: 0 after playing (``exit_when_done``), 2 on a bad bag or parameter."""
    stop_with_parent()
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = BagPlayerNode()
    except ConfigError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(str(exc))
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.start()
    code = 0
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
            if node.finished.is_set():
                if node.error is not None:
                    code = 1
                    break
                if node.config.exit_when_done:
                    # Give reliable publishers a moment to deliver the last messages.
                    executor.spin_once(timeout_sec=0.2)
                    break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        rclpy.try_shutdown()
        executor.shutdown()
        node.destroy_node()
    return code


if __name__ == "__main__":
    sys.exit(main())
