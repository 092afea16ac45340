# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live replay harness: held-out bags played into the running policy node, over ROS 2.

For every step count and every bag that holds a held-out episode, the policy node
(``snapflow_policy``, started here or already running) is configured and activated, the bag's
camera and joint-state topics are played by the bag player node at their recorded timing, and
every ``trajectory_msgs/JointTrajectory`` the node publishes is recorded; then the node is
deactivated and cleaned up (so the next replay starts with an empty observation buffer: the
replayed header stamps start over). :class:`PolicyNodeDriver` (start or find the node, move it
through its lifecycle, set its parameters) serves the closed-loop harness too.

What is recorded is scored without ROS by
:func:`snapflow_ros.evaluation.live_replay.score_recordings` (the timeline, the scoring and the
latency definitions are documented there).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.config_fields import config_to_dict
from snapflow_ros.evaluation.live_replay import (
    LiveReplayConfig,
    LiveReplayError,
    ReceivedTrajectory,
    ReplayRecording,
    read_timeline,
    recording_from_bag,
    score_recordings,
)
from snapflow_ros.nodes.graph_client import GraphClient
from snapflow_ros.nodes.node_process import NodeProcess, ros_args

POLICY_NODE_MODULE = "snapflow_ros.nodes.policy_node"
BAG_PLAYER_MODULE = "snapflow_ros.nodes.bag_player_node"
LATENCY_LABEL = "input_to_publish"  # the end-to-end label of the node's ~/latency_ms


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


class _Recorder:
    """The evaluator's subscriptions: the node's commands and its latency reports."""

    def __init__(self, client, *, command_topic: str, latency_topic: str) -> None:
        self.client = client
        self.recording: ReplayRecording | None = None
        reliable = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
        node = client.node
        self._subscriptions = [
            node.create_subscription(JointTrajectory, command_topic, self._on_trajectory,
                                     reliable),
            node.create_subscription(Float64MultiArray, latency_topic, self._on_latency,
                                     reliable),
        ]

    def close(self) -> None:
        """Remove the subscriptions."""
        for subscription in self._subscriptions:
            self.client.node.destroy_subscription(subscription)

    def _on_trajectory(self, msg) -> None:
        if self.recording is None:
            return
        received = time.time_ns()
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        times = np.array([int(p.time_from_start.sec) * 1_000_000_000
                          + int(p.time_from_start.nanosec) for p in msg.points], dtype=np.int64)
        positions = (np.array([list(p.positions) for p in msg.points], dtype=np.float64)
                     if msg.points else np.zeros((0, len(msg.joint_names))))
        self.recording.trajectories.append(ReceivedTrajectory(
            received, stamp, tuple(msg.joint_names), times, positions))

    def _on_latency(self, msg) -> None:
        if self.recording is None:
            return
        labels = msg.layout.dim[0].label.split(",") if msg.layout.dim else []
        if LATENCY_LABEL in labels and len(msg.data) == len(labels):
            self.recording.node_latency_ms.append(float(msg.data[labels.index(LATENCY_LABEL)]))


class PolicyNodeDriver:
    """Starts (or finds) the policy node and moves it through its lifecycle."""

    def __init__(self, client, config: LiveReplayConfig, *, log: Callable[[str], None],
                 start_params: dict | None = None) -> None:
        self.client = client
        self.config = config
        self.log = log
        self.process = None
        self.initial_state: str | None = None
        if not config.node_running:
            self._start(start_params or {})
        elif not client.wait_for_node(config.node_name, timeout=10.0):
            raise LiveReplayError(f"no node named '{config.node_name}' is running on this ROS "
                                  "graph (same ROS_DOMAIN_ID and transport settings?)")
        self.initial_state = self.state()

    def _start(self, params: dict) -> None:
        log_path = Path(tempfile.mkstemp(prefix="snapflow_policy_", suffix=".log")[1])
        self.process = NodeProcess(POLICY_NODE_MODULE, args=ros_args(
            params=params, node_name=self.config.node_name), env=dict(os.environ),
            python=sys.executable, log_path=log_path, name="policy_node").start()
        self.log(f"started the policy node (log: {log_path})")
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if self.config.node_name in self.client.node_names():
                return
            if not self.process.running:
                break
            self.client.spin_for(0.1)
        raise LiveReplayError(f"the policy node did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the started node printed (empty for a node started elsewhere)."""
        if self.process is None:
            return ""
        return "\n".join(self.process.log_text().splitlines()[-lines:])

    def state(self) -> str:
        """The node's lifecycle state label."""
        return self.client.lifecycle_state(self.config.node_name)

    def transition(self, name: str) -> None:
        """Request a lifecycle transition; raise with the node's log if it is refused."""
        if not self.client.change_lifecycle_state(self.config.node_name, name,
                                                  timeout=self.config.transition_timeout_s):
            raise LiveReplayError(f"the policy node refused '{name}' (state {self.state()}); "
                                  f"{self.log_tail() or 'see its log'}")

    def set_parameters(self, values: dict) -> None:
        """Set parameters; raise naming the ones the node refused."""
        refused = {k: why for k, (ok, why) in self.client.set_parameters(
            self.config.node_name, values).items() if not ok}
        if refused:
            raise LiveReplayError(f"the policy node refused parameters: {refused}")

    def get_parameters(self, names: list[str]) -> dict:
        """Current values of the node's parameters ``names``."""
        return self.client.get_parameters(self.config.node_name, names)

    def bring_to(self, target: str) -> None:
        """Move from the current state to ``unconfigured``, ``inactive`` or ``active``."""
        order = ["unconfigured", "inactive", "active"]
        current = self.state()
        if current not in order or target not in order:
            raise LiveReplayError(f"cannot bring the policy node from '{current}' to '{target}'")
        while current != target:
            step = order.index(target) - order.index(current)
            name = {("unconfigured", 1): "configure", ("inactive", 1): "activate",
                    ("active", -1): "deactivate", ("inactive", -1): "cleanup"}[
                (current, 1 if step > 0 else -1)]
            self.transition(name)
            current = self.state()

    def close(self) -> None:
        """Stop the node if it was started here, else restore its initial state."""
        if self.process is not None:
            self.process.stop(timeout=10.0)
        elif self.initial_state in ("unconfigured", "inactive", "active"):
            try:
                self.bring_to(self.initial_state)
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                self.log(f"warning: could not restore the policy node's state: {exc}")


def _play(client, recorder: _Recorder, recording: ReplayRecording, *, topics: list[str],
          remaps: dict[str, str], config: LiveReplayConfig) -> None:
    """Play ``recording.bag`` with the bag player node while ``recorder`` records into it."""
    workdir = Path(tempfile.mkdtemp(prefix="snapflow_live_"))
    timeline = workdir / "timeline.jsonl"
    params = {"bag": str(recording.bag), "topics": topics, "rate": config.rate,
              "wait_for_subscribers": 1, "wait_timeout_s": 20.0, "exit_when_done": True,
              "timeline_file": str(timeline), "progress_period_s": 0.0}
    if remaps:
        params["remap"] = [f"{k}:={v}" for k, v in remaps.items()]
    player = NodeProcess(BAG_PLAYER_MODULE, args=ros_args(params=params), env=dict(os.environ),
                         python=sys.executable, log_path=workdir / "bag_player.log",
                         name="bag_player")
    recorder.recording = recording
    player.start()
    try:
        while player.running:
            client.spin_for(0.05)
        client.spin_for(config.settle_s)
    finally:
        recorder.recording = None
        code = player.stop(timeout=5.0)
    if code != 0:
        raise LiveReplayError(f"the bag player failed on {recording.bag} (exit {code}): "
                              + "\n".join(player.log_text().splitlines()[-10:]))
    recording.set_timeline(read_timeline(timeline))
    shutil.rmtree(workdir, ignore_errors=True)


def run_live_evaluation(live: LiveReplayConfig, checkpoint: tuple[str, Path] | None,
                        episodes, topics, config, log: Callable[[str], None] = print) -> dict:
    """Replay the held-out bags into the policy node and score what it commands.

    ``checkpoint``: ``(name, dir)`` to load into the node, or None to use the checkpoint a
    running node is configured with. ``topics`` is the bags' ``BagTopicsConfig``, ``config``
    the :class:`~snapflow_ros.evaluation.offline.OfflineEvalConfig` (split, step counts).
    Returns the offline evaluation's JSON layout (one checkpoint, one result per step count
    with the checkpoint's default sampler) plus ``"mode": "live"``.
    """
    from snapflow_ros.evaluation.offline import checkpoint_modes, select_episodes
    from snapflow_ros.policies.checkpoint import read_checkpoint_info

    scored, split = select_episodes(episodes, config)
    episodes_by_bag: dict[str, list] = {}
    for index in scored:
        episodes_by_bag.setdefault(str(episodes[index].source), []).append(episodes[index])
    bags = [Path(b) for b in episodes_by_bag]
    action_names = tuple(episodes[0].action_names)

    start_params = {
        "device": live.device, "seed": live.seed,
        "camera_topics": list(topics.camera_topics), "camera_keys": list(topics.camera_keys),
        "joint_state_topic": topics.state_topic,
    }
    name, path = checkpoint if checkpoint is not None else (None, None)
    if path is not None:
        start_params["checkpoint"] = str(path)
    client = GraphClient(f"snapflow_eval_{os.getpid()}")
    driver = None
    recorder = None
    results: dict[str, dict] = {}
    try:
        driver = PolicyNodeDriver(client, live, log=log, start_params=start_params)
        if live.node_running:
            driver.bring_to("unconfigured")
            if path is not None:
                driver.set_parameters({"checkpoint": str(path)})
        node_params = driver.get_parameters(["checkpoint", "camera_topics", "camera_keys",
                                             "joint_state_topic", "command_topic"])
        if path is None:
            path = Path(node_params["checkpoint"] or "")
            name = path.name or live.node_name
        info = read_checkpoint_info(path)
        stage = str(info["info"].get("stage", "teacher"))
        _, mode = checkpoint_modes(stage, config)
        node_camera = dict(zip(node_params["camera_keys"] or [],
                               node_params["camera_topics"] or []))
        missing = [k for k in topics.camera_keys if k not in node_camera]
        if missing:
            raise LiveReplayError(f"the policy node has no camera topic for {missing} (its "
                                  f"camera_keys: {node_params['camera_keys']})")
        remaps = {bag_topic: _absolute(node_camera[key]) for bag_topic, key in
                  zip(topics.camera_topics, topics.camera_keys)}
        remaps[topics.state_topic] = _absolute(node_params["joint_state_topic"])
        remaps = {k: v for k, v in remaps.items() if k != v}
        played = [*topics.camera_topics, topics.state_topic]
        recorder = _Recorder(client, command_topic=_absolute(node_params["command_topic"]),
                             latency_topic=f"/{live.node_name}/latency_ms")
        for steps in config.step_counts:
            recordings = []
            for bag in bags:
                settings: dict[str, Any] = {"num_steps": int(steps), "sampler_mode": mode,
                                            "task": episodes_by_bag[str(bag)][0].task}
                if live.n_act:
                    settings["n_act"] = live.n_act
                driver.set_parameters(settings)
                driver.bring_to("active")
                log(f"live: {name} at {steps} step(s) ({mode}), playing {bag}")
                recording = recording_from_bag(bag, topics)
                _play(client, recorder, recording, topics=played, remaps=remaps, config=live)
                # Clean up, so that the next replay's (earlier) stamps are not refused as old.
                driver.bring_to("unconfigured")
                recordings.append(recording)
            summary = score_recordings(recordings, episodes_by_bag, action_names, live.rate)
            summary.update(steps=int(steps), mode=mode)
            results[str(steps)] = summary
    finally:
        if recorder is not None:
            recorder.close()
        if driver is not None:
            driver.close()
        client.close()
    return {
        "mode": "live",
        "checkpoints": {name: {
            "path": str(info["checkpoint_dir"]), "stage": stage,
            "policy_type": info["config"].get("policy_type"), "step": info["info"].get("step"),
            "modes": [mode], "default_mode": mode, "results": results}},
        "episodes": [{"index": i, "name": episodes[i].name, "source": str(episodes[i].source),
                      "segment": int(episodes[i].segment), "frames": len(episodes[i])}
                     for i in scored],
        "split": split,
        "num_episodes_loaded": len(episodes),
        "config": {**config_to_dict(config), "live": config_to_dict(live)},
        "trajectories": [],
    }
