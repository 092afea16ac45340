# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Closed-loop success against training budget: every checkpoint of a run on the same seeds.

``snapflow bench budget`` (:mod:`snapflow_ros.cli.bench_budget`) evaluates the checkpoints
``checkpoints/step_<n>`` of one or more training run directories in closed loop (the harness of
``snapflow bench sim``) and this module turns the result into a curve: per checkpoint the step,
the training time spent to reach it, the success rate with its 95% Wilson interval, the mean
highest reward stage and the validation action MSE logged at that step.

Training time comes from the run's ``metrics.jsonl``:

- a cumulative ``elapsed_s`` (or ``elapsed``) field in the training lines, where one is logged;
- otherwise an estimate: each training line's ``samples_per_s`` (a moving average of the
  optimiser steps per second times the global batch) gives the seconds per step for the steps
  since the previous line. The estimate counts the optimiser steps (data loading included) and
  leaves out validation, checkpoint writing and start-up; the source is recorded with the curve.

A resumed run's log repeats the steps after its last checkpoint; the lines of the abandoned
attempt are dropped, so the time is what reaching the step took, not the time spent in all.
Nothing here needs ROS or torch.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.evaluation.closed_loop import ClosedLoopCase
from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

METRICS_FILE = "metrics.jsonl"  # as snapflow_ros.training.trainer writes it
JOB_FILE = "train_job.yaml"
CHECKPOINTS_DIR = "checkpoints"
ELAPSED_FIELDS = ("elapsed_s", "elapsed")
TIME_FROM_ELAPSED = "metrics elapsed_s"
TIME_FROM_SAMPLES_PER_S = "estimated from samples_per_s"
BUDGET_ROLE = "budget"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclasses.dataclass(frozen=True)
class BudgetRun:
    """One line of the budget curve: a training run sampled with one step count and sampler."""

    label: str = param("", "Name of the line in tables and plots (e.g. teacher@10).")
    run_dir: str = param("", "Training run directory (checkpoints/step_<n>, metrics.jsonl).")
    num_steps: int = param(10, "Sampler steps per chunk.", low=1, high=100)
    sampler_mode: str = param("euler", "k-step integration: chained jumps or local Euler.",
                              choices=SAMPLER_MODES)
    offset_s: float = param(0.0, "Training seconds spent before this run's step 0 (e.g. the "
                            "teacher's, for a SnapFlow run), added to every point.", low=0.0)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.label or not self.run_dir:
            raise ConfigError("a budget run needs a label and a run directory")


# ------------------------------------------------------------------------ the run directory

def run_checkpoints(run_dir: str | Path, *, every_nth: int = 1,
                    steps: Sequence[int] | None = None,
                    require_complete: bool = False) -> list[tuple[int, Path]]:
    """``(step, directory)`` of the run's ``checkpoints/step_<n>``, oldest first.

    ``steps`` picks those steps (each must exist); otherwise every ``every_nth`` checkpoint,
    the newest always included. ``require_complete`` leaves out folders without a
    ``config.json`` (a save in progress or killed).
    """
    if every_nth < 1:
        raise ConfigError(f"every_nth={every_nth}: must be >= 1")
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        raise ConfigError(f"{run_dir} is not a training run directory (no {CHECKPOINTS_DIR}/)")
    found = sorted((int(m.group(1)), entry) for entry in folder.iterdir()
                   if (m := _STEP_DIR.match(entry.name)) and entry.is_dir()
                   and (not require_complete or (entry / "config.json").is_file()))
    if not found:
        raise ConfigError(f"{run_dir} has no checkpoints (keep_checkpoints limits how many a "
                          "run keeps)")
    if steps:
        by_step = dict(found)
        missing = [s for s in steps if s not in by_step]
        if missing:
            raise ConfigError(f"{run_dir} has no checkpoint at step(s) "
                              f"{', '.join(map(str, missing))}; it has "
                              f"{', '.join(str(s) for s, _ in found)}")
        return [(s, by_step[s]) for s in sorted(set(steps))]
    return found[::-1][::every_nth][::-1]  # counted back from the newest


@dataclasses.dataclass
class TrainingLog:
    """The training and validation lines of one run's ``metrics.jsonl``."""

    train: list[dict]
    val: list[dict]

    @classmethod
    def read(cls, run_dir: str | Path) -> TrainingLog:
        """Read ``<run_dir>/metrics.jsonl``, without the lines of an abandoned attempt."""
        path = Path(run_dir) / METRICS_FILE
        if not path.is_file():
            raise ConfigError(f"{run_dir} has no {METRICS_FILE}: not a run of `snapflow train`?")
        train: list[dict] = []
        val: list[dict] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                # A line cut short by a killed run (the last one) is not worth failing over.
                continue
            if not isinstance(record, dict) or "step" not in record:
                raise ConfigError(f"{path}:{number}: not a metrics line: {line[:80]!r}")
            is_val = record.get("kind") == "val" or (
                "kind" not in record and any(k.startswith("val_") for k in record))
            _append_dropping_repeats(val if is_val else train, record)
        return cls(train=train, val=val)

    def val_at(self, step: int) -> dict:
        """The validation metrics logged at exactly ``step`` (empty when none were)."""
        for record in reversed(self.val):
            if int(record["step"]) == int(step):
                return {k: v for k, v in record.items() if k.startswith("val_")}
        return {}


def _append_dropping_repeats(records: list[dict], record: dict) -> None:
    # A resumed run starts again after its last checkpoint: its lines replace the old ones.
    step = int(record["step"])
    while records and int(records[-1]["step"]) >= step:
        records.pop()
    records.append(record)


def read_job(run_dir: str | Path) -> dict:
    """The run's ``train_job.yaml`` as a mapping (empty when the run has none)."""
    path = Path(run_dir) / JOB_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def init_checkpoint_step(run_dir: str | Path) -> int:
    """The training step of the checkpoint a run started from (its job's ``init_checkpoint``).

    A run directory there stands for the checkpoint its ``latest`` names now.
    """
    init = str((read_job(run_dir) or {}).get("init_checkpoint") or "")
    if not init:
        raise ConfigError(f"{run_dir}/{JOB_FILE} names no init_checkpoint to start from")
    path = Path(init)
    if not (path / "info.json").is_file() and (path / "latest").is_file():
        path = path / (path / "latest").read_text(encoding="utf-8").strip()
    try:
        return int(json.loads((path / "info.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{run_dir}: cannot read the step of its init_checkpoint {init} "
                          f"({exc})") from None


def training_seconds_at(run_dir: str | Path, step: int, world_size: int = 1) -> float:
    """Training seconds run ``run_dir`` took to reach ``step`` (see :class:`TrainingClock`)."""
    clock = TrainingClock.from_log(TrainingLog.read(run_dir),
                                   global_batch_size(read_job(run_dir), world_size))
    return clock.seconds_at(step)


def global_batch_size(job: dict, world_size: int = 1) -> int:
    """Samples per optimiser step: the job's batch size (or its policy's default) x processes."""
    from snapflow_ros.training.config import training_defaults

    batch = (job.get("train") or {}).get("batch_size")
    if not batch:
        batch = training_defaults(str(job.get("policy_type") or "compact")).batch_size
    return int(batch) * int(world_size)


@dataclasses.dataclass
class TrainingClock:
    """Cumulative training seconds at the logged steps, and where they come from."""

    steps: np.ndarray  # (N,) logged steps, increasing
    seconds: np.ndarray  # (N,) cumulative training seconds at those steps
    source: str

    @classmethod
    def from_log(cls, log: TrainingLog, global_batch: int) -> TrainingClock:
        """The clock of a run: its logged elapsed time or the ``samples_per_s`` estimate."""
        lines = log.train
        if not lines:
            raise ConfigError(f"{METRICS_FILE} has no training lines")
        field = next((f for f in ELAPSED_FIELDS if all(f in r for r in lines)), None)
        steps = np.array([int(r["step"]) for r in lines], dtype=np.float64)
        if field is not None:
            return cls(steps, np.array([float(r[field]) for r in lines]), TIME_FROM_ELAPSED)
        seconds, total, previous = [], 0.0, 0
        for record in lines:
            rate = float(record.get("samples_per_s") or 0.0)
            if not math.isfinite(rate) or rate <= 0:
                raise ConfigError(f"{METRICS_FILE} step {record['step']}: no samples_per_s to "
                                  "estimate the training time from")
            total += (int(record["step"]) - previous) * global_batch / rate
            previous = int(record["step"])
            seconds.append(total)
        return cls(steps, np.array(seconds), TIME_FROM_SAMPLES_PER_S)

    def seconds_at(self, step: int) -> float:
        """Training seconds to reach ``step``: interpolated between logged steps.

        Before the first line the first line's pace holds (from step 0), after the last the
        last interval's.
        """
        steps = np.concatenate([[0.0], self.steps])
        seconds = np.concatenate([[0.0], self.seconds])
        if step <= steps[-1]:
            return float(np.interp(step, steps, seconds))
        pace = (seconds[-1] - seconds[-2]) / max(steps[-1] - steps[-2], 1.0)
        return float(seconds[-1] + (step - steps[-1]) * pace)


def _checkpoint_created(directory: Path) -> str | None:
    try:
        info = json.loads((directory / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info.get("created") if isinstance(info, dict) else None


# ------------------------------------------------------------------------- cases and result

def budget_case_name(label: str, step: int) -> str:
    """The closed-loop case name of ``label``'s checkpoint at ``step``."""
    return f"{label} step {step}"


def budget_cases(runs: Sequence[BudgetRun], checkpoints: dict[str, list[tuple[int, Path]]],
                 n_act: int) -> list[ClosedLoopCase]:
    """One closed-loop case per run and checkpoint (``checkpoints[run.label]``), in run order."""
    return [ClosedLoopCase(name=budget_case_name(run.label, step), checkpoint=str(path),
                           num_steps=run.num_steps, sampler_mode=run.sampler_mode, n_act=n_act,
                           role=BUDGET_ROLE, series=run.label)
            for run in runs for step, path in checkpoints[run.label]]


def budget_curve(run: BudgetRun, checkpoints: list[tuple[int, Path]], cases: dict, *,
                 world_size: int = 1, train_threads: int = 0) -> dict:
    """One run's curve from the closed-loop ``cases`` (name -> entry) and its training log.

    Points for checkpoints not evaluated (yet) are left out. ``train_threads`` (CPU training:
    the torch threads per process) makes ``cpu_hours`` derivable; 0 leaves it ``None``.
    """
    job = read_job(run.run_dir)
    log = TrainingLog.read(run.run_dir)
    global_batch = global_batch_size(job, world_size)
    clock = TrainingClock.from_log(log, global_batch)
    device = str((job.get("train") or {}).get("device") or "")
    points = []
    for step, path in checkpoints:
        entry = cases.get(budget_case_name(run.label, step))
        if entry is None:
            continue
        summary = entry["summary"]
        seconds = run.offset_s + clock.seconds_at(step)
        process_hours = seconds / 3600.0 * world_size
        val = log.val_at(step)
        points.append({
            "step": int(step), "checkpoint": str(path),
            "checkpoint_created": _checkpoint_created(Path(path)),
            "train_s": seconds, "train_minutes": seconds / 60.0,
            "process_hours": process_hours,
            "cpu_hours": (process_hours * train_threads
                          if train_threads and device == "cpu" else None),
            "success_rate": summary["success_rate"], "successes": summary["successes"],
            "episodes": summary["episodes"], "success_ci95": list(summary["success_ci95"]),
            "mean_max_reward": summary["mean_max_reward"],
            "val_mse_10": val.get("val_mse_10"), "val": val,
        })
    return {
        "label": run.label, "run_dir": str(run.run_dir), "num_steps": run.num_steps,
        "sampler_mode": run.sampler_mode, "time_source": clock.source,
        "offset_s": run.offset_s,
        "global_batch": global_batch, "world_size": world_size, "train_device": device,
        "train_threads": train_threads or None, "points": points,
    }


def budget_result(runs: Sequence[BudgetRun], checkpoints: dict[str, list[tuple[int, Path]]],
                  closed_loop: dict, **options) -> dict:
    """The ``budget`` section of the JSON: one curve per run (see :func:`budget_curve`)."""
    return {"runs": [budget_curve(run, checkpoints[run.label], closed_loop["cases"], **options)
                     for run in runs],
            "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# ------------------------------------------------------------------------ table, plot, report

BUDGET_COLUMNS = ("Run", "Step", "Training (min)", "Success", "95% CI", "Mean max reward",
                  "val_mse_10", "Episodes")


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_budget_table(budget: dict) -> str:
    """Markdown table: one row per run and checkpoint, success with its 95% CI."""
    lines = ["| " + " | ".join(BUDGET_COLUMNS) + " |",
             "|" + "|".join("---" for _ in BUDGET_COLUMNS) + "|"]
    for curve in budget["runs"]:
        for point in curve["points"]:
            low, high = point["success_ci95"]
            rate = point["success_rate"]
            lines.append("| " + " | ".join([
                curve["label"], str(point["step"]), _fmt(point["train_minutes"], 1),
                "-" if rate is None else
                f"{100 * rate:.0f}% ({point['successes']}/{point['episodes']})",
                f"{100 * low:.0f}-{100 * high:.0f}%", _fmt(point["mean_max_reward"]),
                _fmt(point["val_mse_10"], 4), str(point["episodes"])]) + " |")
    return "\n".join(lines) + "\n"


def _step_label(step: int) -> str:
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def plot_success_vs_budget(budget: dict, path: Path, target: float | None = 0.5) -> None:
    """Success rate (%) with 95% Wilson bars against training minutes, one line per run.

    The top axis marks the first run's checkpoints by step; other runs' points carry their
    step as a label. ``target`` draws a dashed success-rate goal (None: none).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    curves = [c for c in budget["runs"] if c["points"]]
    for index, curve in enumerate(curves):
        points = curve["points"]
        xs = [p["train_minutes"] for p in points]
        rates = [100 * (p["success_rate"] or 0.0) for p in points]
        below = [max(0.0, r - 100 * p["success_ci95"][0]) for r, p in zip(rates, points)]
        above = [max(0.0, 100 * p["success_ci95"][1] - r) for r, p in zip(rates, points)]
        offset = " + earlier training" if curve.get("offset_s") else ""
        axes.errorbar(xs, rates, yerr=[below, above], marker="o", capsize=4,
                      label=f"{curve['label']} ({curve['num_steps']} step(s), "
                            f"{curve['sampler_mode']}{offset})")
        if index > 0:
            for x, rate, point in zip(xs, rates, points):
                axes.annotate(_step_label(point["step"]), (x, rate), fontsize=7,
                              xytext=(4, -10), textcoords="offset points")
    if target is not None:
        axes.axhline(100 * target, color="grey", linestyle="--", linewidth=1,
                     label=f"target {100 * target:.0f}%")
    axes.set_xlabel("training time (minutes"
                    + (", estimated from samples/s)" if any(
                        c["time_source"] == TIME_FROM_SAMPLES_PER_S for c in curves) else ")"))
    axes.set_ylabel("success rate (%), 95% Wilson CI")
    axes.set_ylim(-5, 105)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    if curves:
        first = curves[0]
        top = axes.twiny()
        top.set_xlim(axes.get_xlim())
        top.set_xticks([p["train_minutes"] for p in first["points"]])
        top.set_xticklabels([_step_label(p["step"]) for p in first["points"]], fontsize=8)
        top.set_xlabel(f"training steps ({first['label']})", fontsize=9)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path)


def budget_report_markdown(result: dict, plot: str) -> str:
    """The report: what ran, how training time was measured, the table and the plot."""
    config = result["config"]
    budget = result["budget"]
    lines = [
        "# Closed-loop success against training budget", "",
        f"Task `{config['task']}`, {config['episodes']} held-out episodes per checkpoint "
        f"(seeds from {config['seed_start']}), {config['episode_steps']} control steps per "
        "episode, the robot in lockstep with the policy node. Success: the task's own signal "
        "(reward 4) with a 95% Wilson interval.", ""]
    for curve in budget["runs"]:
        cpu = [p["cpu_hours"] for p in curve["points"] if p["cpu_hours"] is not None]
        lines.append(
            f"- {curve['label']}: `{curve['run_dir']}`, {curve['num_steps']} step(s) "
            f"{curve['sampler_mode']}; training time {curve['time_source']} (global batch "
            f"{curve['global_batch']}, {curve['world_size']} process(es), device "
            f"{curve['train_device'] or '?'})"
            + (f"; {curve['offset_s'] / 60:.1f} min of earlier training (its teacher's) "
               "included" if curve.get("offset_s") else "")
            + (f"; CPU-hours at the last point {cpu[-1]:.2f}" if cpu else ""))
    if any(c["time_source"] == TIME_FROM_SAMPLES_PER_S for c in budget["runs"]):
        lines += ["", "Estimated training time counts the optimiser steps (data loading "
                  "included), not validation, checkpoint writing or start-up."]
    command = result.get("benchmark", {}).get("command")
    if command:
        lines += ["", f"Command: `{command}`"]
    lines += ["", format_budget_table(budget), f"![Success vs training budget]({plot})", ""]
    return "\n".join(lines)


def write_budget_report(result: dict, out_dir: str | Path, target: float | None = 0.5) -> Path:
    """Write ``report.md`` and ``success_vs_budget.png`` into ``out_dir`` (replaced whole)."""
    from snapflow_ros.evaluation.report import write_directory_atomically

    def fill(tmp: Path) -> None:
        plot_success_vs_budget(result["budget"], tmp / "success_vs_budget.png", target=target)
        (tmp / "report.md").write_text(budget_report_markdown(result, "success_vs_budget.png"),
                                       encoding="utf-8")

    return write_directory_atomically(out_dir, fill)
