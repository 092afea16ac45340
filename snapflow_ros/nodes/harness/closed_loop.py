# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Closed-loop harness: the policy node drives the simulated robot over ROS 2.

Both run as real processes on an isolated ROS graph, exactly as on a robot: the ``sim_robot``
node (simulator environment, lockstep mode: a control step per command, simulated time on
``/clock``) and the ``snapflow_policy`` lifecycle node (``use_sim_time``, so its chunk schedule,
input ages and command stamps follow the simulated clock). Lockstep makes the outcome
independent of how fast the machine is: the robot waits for the policy instead of moving on.

For each case (checkpoint, step count, sampler, ``n_act``) and each held-out seed:

1. the policy node is cleaned up and configured again (a fresh observation buffer, schedule and
   safety guard; the sampling noise is seeded per episode), then activated;
2. the robot is reset to the seed (parameter ``seed``, then service ``~/reset``); its first
   observation starts the policy;
3. the episode runs until the robot reports it done (success, or ``episode_steps`` steps);
   success, the highest reward stage, the simulated and wall time, the policy's inference
   latency (its ``~/latency_ms`` topic: preprocess + model + postprocess, wall clock) and the
   robot's digest of every commanded target are recorded. In lockstep an episode repeats bit
   for bit (same checkpoint, seed, noise seed and settings: same digest), so differences
   between cases are not message-timing noise; ``lockstep_timeouts`` counts the steps the
   robot ran on a held target because no command came within ``lockstep_timeout_s``.

The cases, settings, summaries, table and plots are ROS-free and live in
:mod:`snapflow_ros.evaluation.closed_loop`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.config_fields import ConfigError, config_to_dict
from snapflow_ros.evaluation.closed_loop import (
    CONTROL_PERIOD_S,
    ClosedLoopCase,
    ClosedLoopConfig,
    ClosedLoopError,
    EpisodeResult,
    default_sim_python,
    summarize_episodes,
)
from snapflow_ros.evaluation.live_replay import LiveReplayConfig
from snapflow_ros.nodes.graph_client import GraphClient
from snapflow_ros.nodes.harness.live_replay import PolicyNodeDriver
from snapflow_ros.nodes.node_process import NodeProcess, isolated_ros_environment, ros_args

SIM_NODE_MODULE = "snapflow_ros.nodes.sim_robot_node"
POLICY_NODE_MODULE = "snapflow_ros.nodes.policy_node"
SIM_NODE_NAME = "sim_robot"
POLICY_NODE_NAME = "snapflow_policy"
# Stages of ~/latency_ms that run the model on the wall clock (input_to_publish is measured on
# the node's clock, which is simulated time in lockstep and therefore not a latency).
WALL_CLOCK_INFERENCE_STAGES = ("preprocess", "model", "postprocess")


class _Monitor:
    """The evaluator's subscriptions: the robot's episode status and the node's latency."""

    def __init__(self, client, *, status_topic: str, latency_topic: str,
                 command_topic: str) -> None:
        self.client = client
        self.statuses: list[dict] = []
        self.inference_ms: list[float] = []
        self.chunks = 0
        self.recording = False
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        node = client.node
        self._subscriptions = [
            node.create_subscription(String, status_topic, self._on_status, reliable),
            node.create_subscription(Float64MultiArray, latency_topic, self._on_latency,
                                     reliable),
            node.create_subscription(JointTrajectory, command_topic, self._on_command, reliable),
        ]

    def close(self) -> None:
        """Remove the subscriptions."""
        for subscription in self._subscriptions:
            self.client.node.destroy_subscription(subscription)

    def start_episode(self) -> None:
        """Forget what was recorded and record from now on."""
        self.statuses, self.inference_ms, self.chunks = [], [], 0
        self.recording = True

    def _on_status(self, msg) -> None:
        try:
            self.statuses.append(json.loads(msg.data))
        except ValueError:
            pass

    def _on_latency(self, msg) -> None:
        if not self.recording:
            return
        labels = msg.layout.dim[0].label.split(",") if msg.layout.dim else []
        if len(labels) != len(msg.data):
            return
        values = dict(zip(labels, msg.data))
        if all(stage in values for stage in WALL_CLOCK_INFERENCE_STAGES):
            self.inference_ms.append(float(sum(values[s] for s in WALL_CLOCK_INFERENCE_STAGES)))

    def _on_command(self, msg) -> None:
        if self.recording and len(msg.points) > 1:
            self.chunks += 1

    def final_status(self, episode: int) -> dict | None:
        """The done status of robot episode number ``episode``, once it arrived."""
        for status in reversed(self.statuses):
            if status.get("episode") == episode and status.get("done"):
                return status
        return None

    def latest_status(self, episode: int) -> dict | None:
        """The newest status of robot episode number ``episode``."""
        for status in reversed(self.statuses):
            if status.get("episode") == episode:
                return status
        return None


class ClosedLoopRunner:
    """Starts the sim robot and the policy node, runs cases of held-out episodes, stops them.

    Use as a context manager; :meth:`run_case` returns the case's JSON entry.
    """

    def __init__(self, config: ClosedLoopConfig, *, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.log = log
        self._processes: list = []
        self._saved_env: dict[str, str | None] = {}
        self.client = None
        self.driver = None
        self.monitor = None
        self.sim = None
        self.policy = None
        self._robot_episode = 0
        self.log_dir = Path(config.log_dir) if config.log_dir else Path(
            tempfile.mkdtemp(prefix="snapflow_closed_loop_"))

    # -- start and stop -----------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        if not self.config.isolated_graph:
            return dict(os.environ)
        # A context already running in this process fixes the domain: join it.
        domain = int(os.environ.get("ROS_DOMAIN_ID", "0")) if rclpy.ok() else None
        env = isolated_ros_environment(domain_id=domain, log_dir=str(self.log_dir / "ros"))
        for key in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_LOG_DIR", "HOME"):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = env[key]
        self._saved_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.pop(
            "ROS_AUTOMATIC_DISCOVERY_RANGE", None)
        return env

    def start(self) -> ClosedLoopRunner:
        """Start both nodes and wait until they are up; raises :class:`ClosedLoopError`."""
        config = self.config
        sim_python = config.sim_python or default_sim_python()
        if not Path(sim_python).exists():
            raise ClosedLoopError(
                f"the simulator environment's Python {sim_python} does not exist: create it "
                "with `make setup-sim` (scripts/setup_env.sh sim) or pass its path")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self._environment()
        self.client = GraphClient(f"snapflow_closed_loop_{os.getpid()}")
        params_file = config.params_file or None
        sim_env = dict(env)
        sim_env.setdefault("MUJOCO_GL", "egl")
        self.sim = NodeProcess(SIM_NODE_MODULE, args=ros_args(
            params_file=params_file, params={
                "task": config.task, "image_size": config.image_size,
                "episode_steps": config.episode_steps, "mode": "lockstep",
                "seed": config.seed_start, "auto_reset": False, "success_extra_steps": 0,
                "lockstep_timeout_s": config.lockstep_timeout_s, "status_every_steps": 25}),
            env=sim_env, python=sim_python, log_path=self.log_dir / "sim_robot.log",
            name="sim_robot")
        policy_env = dict(env)
        if config.policy_threads:
            policy_env["OMP_NUM_THREADS"] = str(config.policy_threads)
        self.policy = NodeProcess(POLICY_NODE_MODULE, args=ros_args(
            params_file=params_file, params={
                "use_sim_time": True, "device": config.device,
                "camera_topics": ["camera/image_raw"], "camera_keys": ["top"],
                "joint_state_topic": "joint_states", "command_topic": "joint_trajectory",
                "prefetch_threshold": config.prefetch_threshold, "blending": config.blending,
                "blend_steps": config.blend_steps,
                "expected_image_height": config.image_size,
                "expected_image_width": config.image_size}),
            env=policy_env, python=sys.executable, log_path=self.log_dir / "policy_node.log",
            name="policy_node")
        for process in (self.sim, self.policy):
            self._processes.append(process.start())
        self.log(f"closed loop: started sim_robot ({config.task}, lockstep) and the policy "
                 f"node; logs in {self.log_dir}")
        for name, process, ready in ((SIM_NODE_NAME, self.sim, "sim_robot ready"),
                                     (POLICY_NODE_NAME, self.policy, None)):
            self._wait_for(name, process, ready)
        self.driver = PolicyNodeDriver(self.client, LiveReplayConfig(
            node_name=POLICY_NODE_NAME, node_running=True,
            transition_timeout_s=config.startup_timeout_s), log=self.log)
        self.monitor = _Monitor(self.client, status_topic="/episode/status",
                                latency_topic=f"/{POLICY_NODE_NAME}/latency_ms",
                                command_topic="/joint_trajectory")
        # The robot starts an episode of its own at start-up: the first reset makes it 2.
        self._robot_episode = 1
        return self

    def _wait_for(self, name: str, process, ready: str | None) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            up = name in self.client.node_names()
            if up and (ready is None or ready in process.log_text()):
                return
            if not process.running:
                break
            self.client.spin_for(0.2)
        raise ClosedLoopError(f"the {name} node did not start "
                              f"({'exited' if not process.running else 'timed out'}); "
                              f"its log ({process.log_path}):\n{self._tail(process)}")

    @staticmethod
    def _tail(process, lines: int = 20) -> str:
        return "\n".join(process.log_text().splitlines()[-lines:])

    def close(self) -> None:
        """Stop both nodes (SIGINT, then SIGKILL) and restore this process's environment."""
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        for process in reversed(self._processes):
            process.stop(timeout=15.0)
        self._processes = []
        if self.client is not None:
            self.client.close()
            self.client = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def __enter__(self) -> ClosedLoopRunner:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- episodes -----------------------------------------------------------------------------
    def _check_alive(self) -> None:
        for name, process in (("sim_robot", self.sim), ("policy", self.policy)):
            if not process.running:
                raise ClosedLoopError(f"the {name} node exited (code "
                                      f"{process.process.returncode}); its log "
                                      f"({process.log_path}):\n{self._tail(process)}")

    def _reset_robot(self, seed: int) -> dict:
        refused = {k: why for k, (ok, why) in self.client.set_parameters(
            SIM_NODE_NAME, {"seed": int(seed)}).items() if not ok}
        if refused:
            raise ClosedLoopError(f"the sim robot refused seed {seed}: {refused}")
        success, message = self.client.trigger(f"/{SIM_NODE_NAME}/reset", timeout=60.0)
        if not success:
            raise ClosedLoopError(f"the sim robot did not reset: {message}")
        status = json.loads(message)
        if int(status["seed"]) != int(seed):
            raise ClosedLoopError(f"the sim robot reset to seed {status['seed']}, not {seed}")
        self._robot_episode = int(status["episode"])
        return status

    def _prepare_policy(self, case: ClosedLoopCase, noise_seed: int) -> None:
        """Fresh policy state for an episode: clean up, set the case, configure, activate."""
        self.driver.bring_to("unconfigured")
        self.driver.set_parameters({
            "checkpoint": str(case.checkpoint), "num_steps": int(case.num_steps),
            "sampler_mode": case.sampler_mode, "n_act": int(case.n_act),
            "seed": int(noise_seed)})
        self.driver.bring_to("active")

    def run_episode(self, case: ClosedLoopCase, seed: int, noise_seed: int) -> EpisodeResult:
        """One episode of ``case`` from ``seed``; the policy node ends it inactive."""
        self._check_alive()
        self._prepare_policy(case, noise_seed)
        self.monitor.start_episode()
        started = time.monotonic()
        status = self._reset_robot(seed)
        episode = self._robot_episode
        deadline = started + self.config.episode_timeout_s
        final = None
        while time.monotonic() < deadline:
            final = self.monitor.final_status(episode)
            if final is not None:
                break
            self._check_alive()
            self.client.spin_for(0.05)
        wall = time.monotonic() - started
        self.monitor.recording = False
        timed_out = final is None
        if timed_out:
            final = self.monitor.latest_status(episode) or status
            self.log(f"warning: episode from seed {seed} timed out after {wall:.0f} s at step "
                     f"{final.get('step')}; counted as a failure. The policy node's last "
                     f"lines ({self.policy.log_path}):\n{self._tail(self.policy, 5)}")
        self.driver.bring_to("inactive")
        steps = int(final.get("step", 0))
        return EpisodeResult(
            seed=int(seed), success=bool(final.get("success")) and not timed_out,
            max_reward=float(final.get("max_reward", 0.0)), steps=steps,
            first_success_step=final.get("first_success_step"),
            sim_time_s=steps * CONTROL_PERIOD_S, wall_time_s=wall, timed_out=timed_out,
            inference_ms=list(self.monitor.inference_ms), chunks=self.monitor.chunks,
            command_digest=str(final.get("command_digest", "")),
            lockstep_timeouts=int(final.get("lockstep_timeouts", 0)),
            obstacle_touched=(bool(final["obstacle_touched"]) if self.config.task
                              == "transfer_cube_obstacle" and "obstacle_touched" in final
                              else None))

    def run_case(self, case: ClosedLoopCase) -> dict:
        """Every held-out episode of ``case``: ``{"case", "summary", "episodes"}``."""
        config = self.config
        episodes = []
        for index in range(case.episodes or config.episodes):
            seed = config.seed_start + index
            noise = config.noise_seed + index if config.noise_seed >= 0 else -1
            result = self.run_episode(case, seed, noise)
            episodes.append(result)
            self.log(f"  {case.name} seed {seed}: {'success' if result.success else 'failure'}"
                     f" (max reward {result.max_reward:.0f}, {result.steps} steps, "
                     f"{result.wall_time_s:.1f} s wall, commands {result.command_digest})")
        return {"case": config_to_dict(case), "summary": summarize_episodes(episodes),
                "episodes": [e.to_dict() for e in episodes]}


def run_closed_loop(cases: Sequence[ClosedLoopCase], config: ClosedLoopConfig, *,
                    log: Callable[[str], None] = print,
                    on_case: Callable[[str, dict], None] | None = None) -> dict:
    """Evaluate every case on the same held-out seeds; returns the JSON-ready result.

    ``{"config": {...}, "cases": {name: {"case", "summary", "episodes"}}, "seconds": s}``.
    ``on_case(name, entry)`` is called after each case (e.g. to save partial results).
    """
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ConfigError(f"closed-loop case names must be unique: {names}")
    for case in cases:
        if not Path(case.checkpoint).exists():
            raise ConfigError(f"case {case.name}: checkpoint {case.checkpoint} does not exist")
    started = time.monotonic()
    result: dict[str, Any] = {"config": config_to_dict(config), "cases": {}}
    with ClosedLoopRunner(config, log=log) as runner:
        for case in cases:
            log(f"closed loop: {case.name} ({case.num_steps} step(s), {case.sampler_mode}, "
                f"n_act {case.n_act}) on {case.episodes or config.episodes} seed(s) from "
                f"{config.seed_start}")
            entry = runner.run_case(case)
            result["cases"][case.name] = entry
            summary = entry["summary"]
            low, high = summary["success_ci95"]
            log(f"closed loop: {case.name}: success {summary['successes']}/"
                f"{summary['episodes']} (95% CI {100 * low:.0f}-{100 * high:.0f}%), mean max "
                f"reward {summary['mean_max_reward']:.2f}")
            if on_case is not None:
                on_case(case.name, entry)
    result["seconds"] = time.monotonic() - started
    return result
