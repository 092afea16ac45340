# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Closed-loop evaluation: the policy node drives the simulated robot over ROS 2.

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
   success, the highest reward stage (0..4 for TransferCube / Insertion), the simulated and wall
   time, and the policy's inference latency (its ``~/latency_ms`` topic: preprocess + model +
   postprocess, wall clock) are recorded.

Success rates come with a 95% Wilson score interval. The pure parts (interval, summaries, table,
plots) need neither ROS nor torch; rclpy and :mod:`snapflow_ros.nodes` are imported only when
episodes run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, config_to_dict, param
from snapflow_ros.evaluation.metrics import latency_percentiles_ms

SIM_NODE_MODULE = "snapflow_ros.nodes.sim_robot_node"
POLICY_NODE_MODULE = "snapflow_ros.nodes.policy_node"
SIM_NODE_NAME = "sim_robot"
POLICY_NODE_NAME = "snapflow_policy"
EVAL_SEED_START = 100000  # the simulator's first evaluation seed (snapflow_ros.sim)
TASKS = ("transfer_cube", "insertion")
SUCCESS_REWARD = 4.0
CONTROL_PERIOD_S = 0.02
WILSON_Z_95 = 1.959963984540054
# Stages of ~/latency_ms that run the model on the wall clock (input_to_publish is measured on
# the node's clock, which is simulated time in lockstep and therefore not a latency).
INFERENCE_STAGES = ("preprocess", "model", "postprocess")
SAMPLER_MODES = ("jump", "euler")


class ClosedLoopError(ConfigError):
    """A node did not start, refused a setting, or died during the evaluation."""


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson score interval of a success rate (default 95%); ``(0, 1)`` without trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must lie in [0, trials={trials}]")
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # The bounds are exactly 0 and 1 at the extremes (not a rounding error away).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def default_sim_python() -> str:
    """The simulator environment's interpreter: ``<repo>/.venv-sim/bin/python``.

    The repository is found from this package's location (an editable install), else from the
    current directory.
    """
    package_root = Path(__file__).resolve().parents[2]
    for root in (package_root, Path.cwd()):
        candidate = root / ".venv-sim" / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return str(package_root / ".venv-sim" / "bin" / "python")


@dataclasses.dataclass(frozen=True)
class ClosedLoopCase:
    """One configuration evaluated in closed loop: a checkpoint and how it is sampled."""

    name: str = param("", "Label of the case in tables and plots (e.g. snapflow@1).")
    checkpoint: str = param("", "Checkpoint directory or training run directory.")
    num_steps: int = param(1, "Sampler steps per chunk.", low=1, high=100)
    sampler_mode: str = param("jump", "k-step integration: chained jumps or local Euler.",
                              choices=SAMPLER_MODES)
    n_act: int = param(10, "Actions executed from each chunk.", low=1, high=10000)
    role: str = param("", "What the case stands for (teacher, naive, snapflow).")
    episodes: int = param(0, "Held-out episodes of this case (0: the config's episodes).",
                          low=0, high=100000)
    series: str = param("", "Cases of one series are plotted as one line against n_act "
                        "(e.g. snapflow@1); empty: not part of a sweep.")

    def __post_init__(self) -> None:
        check_config(self)
        if not self.name or not self.checkpoint:
            raise ConfigError("a closed-loop case needs a name and a checkpoint")


@dataclasses.dataclass(frozen=True)
class ClosedLoopConfig:
    """The simulated task, the held-out seeds and how the two nodes are run."""

    task: str = param("transfer_cube", "Simulated task.", choices=TASKS)
    episodes: int = param(10, "Held-out episodes per case (seeds seed_start, seed_start+1, ...).",
                          low=1, high=100000)
    seed_start: int = param(EVAL_SEED_START, "First held-out seed (training demos use seeds "
                            "below 100000).", low=0, high=2**32 - 1)
    episode_steps: int = param(400, "Control steps per episode (20 ms each).", low=1,
                               high=100000)
    image_size: int = param(128, "Camera image side (pixels); must match the checkpoint.",
                            low=128, high=1024)
    sim_python: str = param("", "Interpreter of the simulator environment (empty: "
                            "<repo>/.venv-sim/bin/python).")
    params_file: str = param("", "ROS parameter file with sim_robot / snapflow_policy sections "
                             "(e.g. config/sim_demo.yaml); the case settings override it.")
    device: str = param("cpu", "The policy node's inference device.",
                        choices=("auto", "cpu", "cuda"))
    policy_threads: int = param(1, "torch CPU threads of the policy node (0: torch's default; "
                                "1 leaves a core to the simulator).", low=0, high=256)
    prefetch_threshold: int = param(
        0, "The policy node's prefetch_threshold: 0 plans the next chunk from the observation "
        "after the last executed action (synchronous chunk execution, as the SnapFlow paper's "
        "n_act sweep).", low=0, high=10000)
    blending: str = param("none", "The policy node's cross-fade between chunks.",
                          choices=("none", "linear", "exponential"))
    noise_seed: int = param(0, "Seed of the sampling noise of episode i is noise_seed + i "
                            "(-1: fresh noise).", low=-1)
    lockstep_timeout_s: float = param(
        60.0, "Wall seconds the robot waits for a command before holding a step; large, so "
        "that a slow policy never lets the simulation run on.", low=0.1, high=3600.0)
    episode_timeout_s: float = param(900.0, "Wall seconds after which an episode is abandoned "
                                     "(counted as a failure, marked timed_out).", low=1.0)
    startup_timeout_s: float = param(180.0, "Wall seconds to wait for a node to start or "
                                     "configure.", low=1.0)
    isolated_graph: bool = param(True, "Run on a private ROS graph (random domain, shared-"
                                 "memory transport); false: the current environment's.")
    log_dir: str = param("", "Keep the nodes' logs here (empty: a temporary directory).")

    def __post_init__(self) -> None:
        check_config(self)


@dataclasses.dataclass
class EpisodeResult:
    """One closed-loop episode."""

    seed: int
    success: bool
    max_reward: float
    steps: int
    first_success_step: int | None
    sim_time_s: float  # simulated time until the episode ended (steps * 20 ms)
    wall_time_s: float  # from the reset to the robot's done status
    timed_out: bool = False
    inference_ms: list[float] = dataclasses.field(default_factory=list)
    chunks: int = 0  # trajectories the policy published during the episode

    def to_dict(self) -> dict:
        """JSON form, with the per-inference latencies reduced to percentiles."""
        data = dataclasses.asdict(self)
        data.pop("inference_ms")
        data["inference_ms_p50"], data["inference_ms_p95"] = latency_percentiles_ms(
            self.inference_ms)
        return data


def summarize_episodes(episodes: Sequence[EpisodeResult]) -> dict:
    """Success rate with its 95% Wilson interval, reward stages, episode times, latency."""
    n = len(episodes)
    successes = sum(1 for e in episodes if e.success)
    low, high = wilson_interval(successes, n)
    rewards = np.array([e.max_reward for e in episodes], dtype=np.float64)
    latencies = [v for e in episodes for v in e.inference_ms]
    p50, p95 = latency_percentiles_ms(latencies)
    success_times = [e.first_success_step * CONTROL_PERIOD_S for e in episodes
                     if e.success and e.first_success_step is not None]
    stages = {str(stage): int(np.sum(np.floor(rewards) == stage)) for stage in range(5)}
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else None,
        "success_ci95": [low, high],
        "mean_max_reward": float(rewards.mean()) if n else None,
        "max_reward_counts": stages,
        "mean_episode_sim_s": float(np.mean([e.sim_time_s for e in episodes])) if n else None,
        "mean_success_time_s": float(np.mean(success_times)) if success_times else None,
        "mean_episode_wall_s": float(np.mean([e.wall_time_s for e in episodes])) if n else None,
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
        "inferences": len(latencies),
        "timeouts": sum(1 for e in episodes if e.timed_out),
    }


# ----------------------------------------------------------------------- table and plots

TABLE_COLUMNS = ("Case", "Steps", "Sampler", "n_act", "Success", "95% CI", "Mean max reward",
                 "Episode (s, sim)", "Wall (s)", "Latency p50 (ms)", "p95 (ms)", "Episodes")


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    """Markdown table of a closed-loop result: one row per case, success with its 95% CI."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    for name, entry in result["cases"].items():
        case, summary = entry["case"], entry["summary"]
        low, high = summary["success_ci95"]
        rate = summary["success_rate"]
        lines.append("| " + " | ".join([
            name, str(case["num_steps"]), case["sampler_mode"], str(case["n_act"]),
            "-" if rate is None else f"{100 * rate:.0f}% ({summary['successes']}/"
                                     f"{summary['episodes']})",
            f"{100 * low:.0f}-{100 * high:.0f}%", _fmt(summary["mean_max_reward"]),
            _fmt(summary["mean_episode_sim_s"]), _fmt(summary["mean_episode_wall_s"], 1),
            _fmt(summary["latency_ms_p50"], 1), _fmt(summary["latency_ms_p95"], 1),
            str(summary["episodes"])]) + " |")
    return "\n".join(lines) + "\n"


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _rate_and_errors(summary: dict) -> tuple[float, float, float]:
    rate = summary["success_rate"] or 0.0
    low, high = summary["success_ci95"]
    return 100 * rate, 100 * max(0.0, rate - low), 100 * max(0.0, high - rate)


def plot_success_bars(result: dict, path: Path, cases: Sequence[str] | None = None) -> None:
    """Bar chart of success rate (%) per case with 95% Wilson intervals."""
    names = list(cases) if cases is not None else list(result["cases"])
    figure = _figure(max(5.0, 1.2 * len(names) + 2), 4.5)
    axes = figure.add_subplot(1, 1, 1)
    values, lower, upper, rewards = [], [], [], []
    for name in names:
        summary = result["cases"][name]["summary"]
        rate, below, above = _rate_and_errors(summary)
        values.append(rate)
        lower.append(below)
        upper.append(above)
        rewards.append(summary["mean_max_reward"] or 0.0)
    positions = np.arange(len(names))
    axes.bar(positions, values, yerr=[lower, upper], capsize=5, color="tab:blue", alpha=0.8)
    for x, value, reward in zip(positions, values, rewards):
        axes.annotate(f"{value:.0f}%\nreward {reward:.1f}", (x, value), ha="center",
                      va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=20, ha="right")
    axes.set_ylim(0, 110)
    axes.set_ylabel("success rate (%), 95% Wilson CI")
    episodes = result["config"].get("episodes")
    axes.set_title(f"Closed loop, {result['config'].get('task')}, {episodes} held-out seeds")
    figure.tight_layout()
    figure.savefig(path)


def plot_success_vs_n_act(result: dict, path: Path) -> None:
    """Success rate (%) against ``n_act`` for every checkpoint / sampler with a sweep."""
    series: dict[str, list[tuple[int, dict]]] = {}
    for entry in result["cases"].values():
        case = entry["case"]
        if case.get("series"):
            series.setdefault(case["series"], []).append((int(case["n_act"]), entry["summary"]))
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    ticks: set[int] = set()
    drawn = [(label, sorted(points, key=lambda p: p[0])) for label, points in series.items()
             if len(points) >= 2]
    for index, (label, points) in enumerate(drawn):
        # Series side by side (a few percent apart on the log axis) so the intervals stay legible.
        shift = 1.0 + 0.04 * (index - (len(drawn) - 1) / 2)
        xs = [p[0] for p in points]
        ticks.update(xs)
        rates = [_rate_and_errors(p[1]) for p in points]
        axes.errorbar([x * shift for x in xs], [r[0] for r in rates],
                      yerr=[[r[1] for r in rates], [r[2] for r in rates]],
                      marker="o", capsize=4, label=label)
    axes.set_xscale("log")
    axes.set_xticks(sorted(ticks))
    axes.set_xticklabels([str(t) for t in sorted(ticks)])
    axes.minorticks_off()
    axes.set_xlabel("n_act (actions executed per chunk)")
    axes.set_ylabel("success rate (%), 95% Wilson CI")
    axes.set_ylim(-5, 105)
    axes.set_title("Execution horizon sweep (chunk 50)")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def plot_reward_stages(result: dict, path: Path) -> None:
    """Stacked bars: fraction of episodes per case ending at each highest reward stage."""
    names = list(result["cases"])
    figure = _figure(max(5.0, 1.2 * len(names) + 2), 4.5)
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(names))
    bottom = np.zeros(len(names))
    for stage in range(5):
        heights = []
        for name in names:
            summary = result["cases"][name]["summary"]
            heights.append(100 * summary["max_reward_counts"][str(stage)]
                           / max(summary["episodes"], 1))
        axes.bar(positions, heights, bottom=bottom, label=f"reward {stage}")
        bottom += np.array(heights)
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=20, ha="right")
    axes.set_ylabel("episodes (%)")
    axes.set_title("Highest reward stage reached")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


# ------------------------------------------------------------------------------- ROS side

class _Monitor:
    """The evaluator's subscriptions: the robot's episode status and the node's latency."""

    def __init__(self, client, *, status_topic: str, latency_topic: str,
                 command_topic: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

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
        if all(stage in values for stage in INFERENCE_STAGES):
            self.inference_ms.append(float(sum(values[s] for s in INFERENCE_STAGES)))

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
        import rclpy

        from snapflow_ros.nodes.node_process import isolated_ros_environment

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
        from snapflow_ros.evaluation.live_replay import LiveReplayConfig, PolicyNodeDriver
        from snapflow_ros.nodes.graph_client import GraphClient
        from snapflow_ros.nodes.node_process import NodeProcess, ros_args

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
        from std_srvs.srv import Trigger

        refused = {k: why for k, (ok, why) in self.client.set_parameters(
            SIM_NODE_NAME, {"seed": int(seed)}).items() if not ok}
        if refused:
            raise ClosedLoopError(f"the sim robot refused seed {seed}: {refused}")
        reply = self.client._call(Trigger, f"/{SIM_NODE_NAME}/reset", Trigger.Request(),
                                  timeout=60.0)
        if not reply.success:
            raise ClosedLoopError(f"the sim robot did not reset: {reply.message}")
        status = json.loads(reply.message)
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
            inference_ms=list(self.monitor.inference_ms), chunks=self.monitor.chunks)

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
                     f"{result.wall_time_s:.1f} s wall)")
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
