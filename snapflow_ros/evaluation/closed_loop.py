# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Closed-loop evaluation results: what is run, the success statistics, the table and plots.

The episodes themselves run over ROS 2 in :mod:`snapflow_ros.nodes.harness.closed_loop`: the
``sim_robot`` node (simulator environment, lockstep mode: a control step per command, simulated
time on ``/clock``) and the ``snapflow_policy`` lifecycle node (``use_sim_time``), as real
processes on an isolated graph. This module holds what needs neither ROS nor torch: the cases
and settings (:class:`ClosedLoopCase`, :class:`ClosedLoopConfig`), one episode's outcome
(:class:`EpisodeResult`: success, the highest reward stage 0..4 for TransferCube / Insertion,
simulated and wall time, the policy's inference latency), the summary of a case with a 95%
Wilson score interval of its success rate, the markdown table and the plots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.evaluation.metrics import latency_percentiles_ms
from snapflow_ros.runtime.chunk_scheduler import BLENDINGS
from snapflow_ros.sim.aloha_env import TASKS
from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

EVAL_SEED_START = 100000  # the simulator's first evaluation seed (snapflow_ros.sim)
SUCCESS_REWARD = 4.0
CONTROL_PERIOD_S = 0.02
WILSON_Z_95 = 1.959963984540054


class ClosedLoopError(ConfigError):
    """A node did not start, refused a setting, or died during the evaluation.

    Raised by the harness (:mod:`snapflow_ros.nodes.harness.closed_loop`); defined here so that
    callers can catch it without importing ROS.
    """


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
    blending: str = param("none", "The policy node's cross-fade between chunks (none: each "
                          "chunk replaces the plan, as the SnapFlow paper's n_act sweep).",
                          choices=BLENDINGS)
    blend_steps: int = param(5, "Length of the policy node's cross-fade (control ticks).",
                             low=1, high=10000)
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
    # The robot's digest of every commanded target (episode/status): reruns of the same case,
    # seed and noise seed give the same digest in lockstep, so a difference is not noise.
    command_digest: str = ""
    lockstep_timeouts: int = 0  # steps the robot ran on a held target, waiting in vain
    # transfer_cube_obstacle: the post was touched (the episode failed there); None: no post.
    obstacle_touched: bool | None = None

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
        "lockstep_timeouts": sum(e.lockstep_timeouts for e in episodes),
        "digest": episodes_digest(episodes),
        # How many episodes failed on the post: where the mean of two ways ends up.
        "obstacle_touched": (sum(1 for e in episodes if e.obstacle_touched)
                             if any(e.obstacle_touched is not None for e in episodes) else None),
    }


def episodes_digest(episodes: Sequence[EpisodeResult]) -> str:
    """One digest (hex, 16) over the episodes' seeds and command digests: equal for a rerun."""
    joined = ";".join(f"{e.seed}:{e.command_digest}" for e in episodes)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


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


def closed_loop_report_markdown(result: dict, plots: list[tuple[str, str]]) -> str:
    """The closed-loop benchmark report: what ran, the table, the plots."""
    config = result["config"]
    bench = result.get("benchmark", {})
    lines = [
        "# Closed-loop benchmark on the simulated robot", "",
        f"Task `{config['task']}`, held-out seeds from {config['seed_start']}, "
        f"{config['episodes']} episodes per configuration "
        f"(sweep: {bench.get('sweep_episodes') or config['episodes']}), "
        f"{config['episode_steps']} control steps (20 ms) per episode; the robot runs in "
        "lockstep with the policy node (results do not depend on the machine's speed).", "",
        f"- teacher: `{bench.get('teacher')}`",
        f"- SnapFlow: `{bench.get('snapflow')}`",
        f"- command: `{bench.get('command', '')}`",
        f"- machine: {result.get('machine', {}).get('platform', '?')}, "
        f"{result.get('machine', {}).get('cpu_count', '?')} CPUs; total "
        f"{result.get('seconds', 0) / 60:.1f} min", "",
        "Success: the task's own success signal (reward 4); 95% Wilson interval. Mean max "
        "reward: the highest reward stage reached per episode (TransferCube: 1 touched, "
        "2 lifted, 3 touched by the other gripper, 4 transferred). Latency: the policy node's "
        "preprocess + model + postprocess per chunk (wall clock).", "",
        format_table(result)]
    touched = [(name, entry["summary"]) for name, entry in result["cases"].items()
               if entry["summary"].get("obstacle_touched") is not None]
    if touched:
        lines += ["Episodes that touched the post (a failure): " + ", ".join(
            f"{name} {summary['obstacle_touched']}/{summary['episodes']}"
            for name, summary in touched) + ".", ""]
    for file, caption in plots:
        lines += [f"![{caption}]({file})", ""]
    return "\n".join(lines)


def write_closed_loop_report(result: dict, out_dir: str | Path) -> Path:
    """Write ``report.md`` and the plots into ``out_dir`` (replaced as a whole, atomically)."""
    from snapflow_ros.evaluation.report import write_directory_atomically

    def fill(tmp: Path) -> None:
        plots = []
        main = [n for n, e in result["cases"].items() if e["case"]["role"] != "sweep"]
        plot_success_bars(result, tmp / "success.png", cases=main)
        plots.append(("success.png", "Success rate with 95% CI"))
        if any(e["case"]["role"] == "sweep" for e in result["cases"].values()):
            plot_success_vs_n_act(result, tmp / "success_vs_n_act.png")
            plots.append(("success_vs_n_act.png", "Success vs n_act"))
        plot_reward_stages(result, tmp / "reward_stages.png")
        plots.append(("reward_stages.png", "Highest reward stage reached"))
        (tmp / "report.md").write_text(closed_loop_report_markdown(result, plots),
                                       encoding="utf-8")

    return write_directory_atomically(out_dir, fill)
