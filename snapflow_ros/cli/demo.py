# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow demo``: the whole story on the simulated robot, one command.

Stages, each a command a user could type (printed before it runs, its output kept in
``<out>/logs/``):

1. ``demos``: scripted demonstrations of the task (TransferCube, Insertion or the multimodal
   TransferCube with a post) recorded as rosbag2, in the simulator environment (``python -m
   snapflow_ros.sim.demo_recording``, seeds from 0); optionally a few more from held-out seeds
   (from 100000) for the offline evaluation, each recorded once per way of a multimodal task
   (``--strategy both``: two truths for the same scene);
2. ``teacher``: flow-matching training of the compact policy (``snapflow train --stage
   teacher``);
3. ``snapflow``: SnapFlow self-distillation of the teacher (``snapflow train --stage snapflow
   --init``);
4. ``offline``: action MSE per step count on held-out episodes (``snapflow eval``): the teacher
   run's validation split, or the held-out demonstrations; with ``offline_samples_per_frame``
   K >= 2 also best-of-K MSE, the share of samples between modes and the mode coverage;
5. ``closed_loop``: the policy node drives the simulated robot over ROS 2 on held-out seeds
   (``snapflow bench sim``): teacher at 10 steps, naive teacher at 1 step, SnapFlow at 1 step,
   and an ``n_act`` sweep;

then the final tables are printed and written to ``<out>/summary.md``. A stage whose outputs
exist is skipped, an interrupted training run is resumed, and the closed-loop stage keeps the
configurations it finished, so rerunning the same command picks up where it stopped. Settings
come from one profile of the ``snapflow_demo`` section of ``config/sim_demo.yaml``
(``--profile NAME``; ``--quick`` and ``--full`` are shortcuts); the output directory remembers
them and refuses to mix runs of other settings.

This module imports neither torch nor rclpy: every stage runs in its own process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from snapflow_ros.cli.signals import StopRequested
from snapflow_ros.config_fields import (
    ConfigError,
    changed_settings,
    check_config,
    config_from_dict,
    config_to_dict,
    param,
)
from snapflow_ros.config_loading import apply_overrides, read_yaml_mapping, yaml_section
from snapflow_ros.runtime.chunk_scheduler import BLENDINGS
from snapflow_ros.sim.aloha_env import TASKS
from snapflow_ros.sim.scripted_expert import TASK_STRATEGIES

SECTION = "snapflow_demo"
DEFAULT_PROFILE = "quick"
DEMO_STAGES = ("demos", "teacher", "snapflow", "offline", "closed_loop")
"""The demo's stages, in the order they run."""
TRAIN_SEED_START = 0  # snapflow_ros.sim.demo_recording: training seeds
EVAL_SEED_START = 100000  # held-out seeds (offline demos and closed-loop episodes)
# What the sim robot publishes and the recorder writes (snapflow_ros.sim.demo_recording).
BAG_TOPIC_FLAGS = ("--camera-topic", "/camera/image_raw", "--state-topic", "/joint_states",
                   "--action-topic", "/joint_trajectory", "--action-type", "joint_trajectory")
OBJECT_POSES_TOPIC = "/object_poses"  # geometry_msgs/PoseArray: the environment state
SETTINGS_FILE = "demo_settings.json"
STAGE_STOP_TIMEOUT_S = 60.0
"""How long a stopped stage may take to finish cleanly (a training stage writes a checkpoint)."""


@dataclasses.dataclass(frozen=True)
class SimDemoConfig:
    """One profile of the demo: data, model, training budget and evaluation size."""

    task: str = param("transfer_cube", "Simulated task.", choices=TASKS)
    demos: int = param(40, "Scripted demonstrations recorded for training (seeds 0, 1, ...; a "
                       "demonstration whose replay fails is dropped).", low=2, high=99999)
    heldout_demos: int = param(
        0, "Scripted demonstrations from held-out seeds (100000, ...) for the offline "
        "evaluation; 0 scores the teacher run's validation split instead.", low=0, high=10000)
    image_size: int = param(128, "Camera image side (pixels) for recording, training and the "
                            "robot; >= 128 (the cube is ~3 px at 96).", low=128, high=1024)
    episode_steps: int = param(400, "Control steps (20 ms) per demonstration and per "
                               "closed-loop episode.", low=10, high=100000)
    environment_state: bool = param(
        True, "Record, train on and feed the object poses (/object_poses, the cube's or the peg's "
        "and socket's) beside the camera; false trains an image-only policy.")
    policy: dict = param(
        {}, "Compact policy settings (CompactPolicyConfig fields, e.g. chunk_size, "
        "cnn_channels, hidden_dim, num_layers).")
    batch_size: int = param(32, "Training samples per optimiser step (both stages).",
                            low=1, high=4096)
    teacher_steps: int = param(3000, "Optimiser steps of the flow-matching teacher.",
                               low=1, high=10**7)
    teacher_lr: float = param(3e-4, "Peak learning rate of the teacher.", low=0.0, high=1.0)
    snapflow_steps: int = param(1000, "Optimiser steps of SnapFlow distillation.",
                                low=1, high=10**7)
    snapflow_lr: float = param(1e-4, "Peak learning rate of SnapFlow distillation.",
                               low=0.0, high=1.0)
    val_fraction: float = param(0.1, "Fraction of the demonstrations held out for validation "
                                "(and for the offline evaluation without heldout_demos).",
                                low=0.0, high=0.9)
    train_threads: int = param(0, "torch CPU threads of the training and evaluation "
                               "processes (0: torch's default).", low=0, high=256)
    device: str = param("cpu", "Device for training, evaluation and the policy node: cpu, "
                        "cuda or auto.", choices=("cpu", "cuda", "auto"))
    offline_steps: tuple[int, ...] = param((1, 2, 4, 10), "Step counts of the offline "
                                           "evaluation.", low=1, high=100)
    offline_samples: int = param(200, "Held-out frames scored per checkpoint and step count.",
                                 low=1, high=100000)
    offline_samples_per_frame: int = param(
        1, "Noise samples per held-out frame (snapflow eval --samples-per-frame): K >= 2 adds "
        "best-of-K MSE, the share between modes and mode coverage (K times the sampling).",
        low=1, high=1000)
    offline_distinct_truth_mse: float = param(
        0.0, "MSE above which two recorded chunks of one observation are different truths "
        "(snapflow eval --distinct-truth-mse; 0: ten times the teacher's median best-of-K).",
        low=0.0, high=1e6)
    eval_episodes: int = param(10, "Closed-loop episodes (held-out seeds) per main "
                               "configuration.", low=1, high=100000)
    teacher_eval_steps: int = param(10, "Sampler steps of the teacher in closed loop.",
                                    low=1, high=100)
    n_act: int = param(10, "Actions executed per chunk in the main closed-loop comparison.",
                       low=1, high=1000)
    n_act_sweep: tuple[int, ...] = param((1, 3, 5, 10, 20), "n_act values of the execution-"
                                         "horizon sweep.", low=1, high=1000)
    sweep_episodes: int = param(3, "Closed-loop episodes per sweep point (0: no sweep).",
                                low=0, high=100000)
    policy_threads: int = param(1, "torch threads of the policy node in closed loop.",
                                low=0, high=256)
    # none by default: the runs recorded before this setting existed used no cross-fade.
    blending: str = param("none", "The policy node's cross-fade from one chunk into the next "
                          "in closed loop (none: each chunk replaces the plan, the strict "
                          "protocol; linear is the node's own default).", choices=BLENDINGS)
    blend_steps: int = param(5, "Length of that cross-fade in control ticks.", low=1,
                             high=10000)

    def __post_init__(self) -> None:
        check_config(self)
        chunk = int(self.policy.get("chunk_size", 50))
        swept = self.n_act_sweep if self.sweep_episodes else ()
        too_long = [n for n in (self.n_act, *swept) if n > chunk]
        if too_long:
            raise ConfigError(f"n_act values {too_long} exceed the chunk size {chunk}")


def load_demo_config(path: str | Path, profile: str,
                     overrides: Sequence[str] = ()) -> SimDemoConfig:
    """Profile ``profile`` of the ``snapflow_demo`` section of ``path``, plus ``key=value``s.

    Read and parsed by :mod:`snapflow_ros.config_loading` (``policy.hidden_dim=64`` sets a key of
    the ``policy`` mapping).
    """
    section = yaml_section(read_yaml_mapping(path), SECTION, path=path)
    if profile not in section:
        raise ConfigError(f"{path}: no profile '{profile}' in section '{SECTION}' "
                          f"(found: {', '.join(section) or 'none'})")
    try:
        values = apply_overrides(dict(section[profile] or {}), overrides)
    except ConfigError as exc:
        raise ConfigError(f"--set: {exc}") from exc
    try:
        return config_from_dict(SimDemoConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path} ({profile}): {exc}") from exc


# ------------------------------------------------------------------------------ commands

def stage_commands(config: SimDemoConfig, out: Path, *, sim_python: str, python: str,
                   params_file: str | None) -> dict[str, list[list[str]]]:
    """The command lines of every stage (a stage may run several)."""
    cli = [python, "-m", "snapflow_ros.cli"]
    demos = [[sim_python, "-m", "snapflow_ros.sim.demo_recording", "--task", config.task,
              "--episodes", str(config.demos), "--seed-start", str(TRAIN_SEED_START),
              "--out", str(out / "demos"), "--image-size", str(config.image_size),
              "--overwrite", "--no-progress"]]
    if config.heldout_demos:
        # A multimodal task's held-out seeds are recorded once per way: frames with two truths.
        strategy = ["--strategy", "both"] if config.task in TASK_STRATEGIES else []
        demos.append([sim_python, "-m", "snapflow_ros.sim.demo_recording", "--task",
                      config.task, "--episodes", str(config.heldout_demos), "--seed-start",
                      str(EVAL_SEED_START), "--out", str(out / "heldout_demos"),
                      "--image-size", str(config.image_size), *strategy, "--overwrite",
                      "--no-progress"])

    def train(stage: str, steps: int, lr: float, extra: list[str]) -> list[str]:
        topics = [*BAG_TOPIC_FLAGS, *(("--environment-state-topics", OBJECT_POSES_TOPIC)
                                      if config.environment_state else ())]
        command = [*cli, "train", "--bags", str(out / "demos"), *topics,
                   "--stage", stage, "--steps", str(steps), "--batch-size",
                   str(config.batch_size), "--lr", repr(lr), "--device", config.device,
                   "--out", str(out / stage), "--cache-dir", str(out / "cache"),
                   "--no-progress",
                   "--set", f"val_fraction={config.val_fraction}",
                   "--set", f"val_every={max(steps // 4, 1)}",
                   "--set", f"checkpoint_every={max(steps // 4, 1)}",
                   "--set", f"log_every={max(min(steps // 20, 100), 1)}",
                   "--set", f"data.image_height={config.image_size}",
                   "--set", f"data.image_width={config.image_size}", *extra]
        return command

    policy_flags = []
    for key, value in config.policy.items():
        rendered = json.dumps(list(value) if isinstance(value, tuple) else value)
        policy_flags += ["--set", f"policy.{key}={rendered}"]
    teacher = train("teacher", config.teacher_steps, config.teacher_lr,
                    ["--policy", "compact", *policy_flags])
    snapflow = train("snapflow", config.snapflow_steps, config.snapflow_lr,
                     ["--init", str(out / "teacher")])
    offline = [*cli, "eval", "--checkpoint", f"teacher={out / 'teacher'}",
               "--checkpoint", f"snapflow={out / 'snapflow'}",
               "--steps", ",".join(map(str, config.offline_steps)),
               "--samples", str(config.offline_samples),
               "--samples-per-frame", str(config.offline_samples_per_frame),
               "--distinct-truth-mse", str(config.offline_distinct_truth_mse),
               "--device", config.device,
               "--json", str(out / "offline_eval.json"), "--report", str(out / "offline_report"),
               "--no-progress"]
    if config.heldout_demos:
        offline += ["--bags", str(out / "heldout_demos"), "--all-episodes"]
    else:
        offline += ["--bags", str(out / "demos")]
    if config.train_threads:
        offline += ["--threads", str(config.train_threads)]
    closed_loop = [*cli, "bench", "sim", "--teacher", str(out / "teacher"),
                   "--snapflow", str(out / "snapflow"), "--task", config.task,
                   "--episodes", str(config.eval_episodes), "--seed-start",
                   str(EVAL_SEED_START), "--episode-steps", str(config.episode_steps),
                   "--teacher-steps", str(config.teacher_eval_steps),
                   "--n-act", str(config.n_act),
                   "--n-act-sweep", ",".join(map(str, config.n_act_sweep))
                   if config.sweep_episodes else "",
                   "--sweep-episodes", str(config.sweep_episodes),
                   "--sim-python", sim_python, "--device", config.device,
                   "--policy-threads", str(config.policy_threads),
                   "--blending", config.blending, "--blend-steps", str(config.blend_steps),
                   "--json", str(out / "closed_loop.json"),
                   "--report", str(out / "closed_loop_report"),
                   "--log-dir", str(out / "logs" / "closed_loop_nodes"), "--resume"]
    if params_file:
        closed_loop += ["--params-file", str(params_file)]
    return {"demos": demos, "teacher": [teacher], "snapflow": [snapflow],
            "offline": [offline], "closed_loop": [closed_loop]}


# ------------------------------------------------------------------------- stage status

def _checkpoint_step(run_dir: Path) -> int | None:
    """Step of the run's latest checkpoint (None without one).

    Reads the run's ``latest`` pointer and the checkpoint's ``info.json`` (no torch needed).
    """
    pointer = run_dir / "latest"
    try:
        info = run_dir / pointer.read_text(encoding="utf-8").strip() / "info.json"
        return int(json.loads(info.read_text(encoding="utf-8"))["step"])
    except (ValueError, KeyError, OSError):
        return None


def stage_done(stage: str, config: SimDemoConfig, out: Path) -> bool:
    """True when ``stage``'s outputs exist and are complete."""
    if stage == "demos":
        files = [out / "demos" / "recording.json"]
        if config.heldout_demos:
            files.append(out / "heldout_demos" / "recording.json")
        return all(f.is_file() for f in files)
    if stage in ("teacher", "snapflow"):
        target = config.teacher_steps if stage == "teacher" else config.snapflow_steps
        step = _checkpoint_step(out / stage)
        return step is not None and step >= target
    if stage == "offline":
        return (out / "offline_eval.json").is_file()
    if stage == "closed_loop":
        path = out / "closed_loop.json"
        try:
            return bool(json.loads(path.read_text(encoding="utf-8")).get("complete"))
        except (OSError, ValueError):
            return False
    raise ValueError(f"unknown stage {stage!r}")


def _resume_flag(stage: str, command: list[str], out: Path) -> list[str]:
    """Training stages continue an interrupted run (a checkpoint below the target step)."""
    if stage in ("teacher", "snapflow") and _checkpoint_step(out / stage) is not None:
        return [*command, "--resume"]
    return command


# ---------------------------------------------------------------------------- running

def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(command: list[str], log_path: Path, *, env: dict[str, str] | None = None,
                echo: Callable[[str], None] = print) -> int:
    """Run ``command``, echoing its output indented and keeping it in ``log_path``.

    The stage has its own session, so it is stopped by this process only: Ctrl-C, SIGTERM or
    SIGHUP here is passed on to it as the same signal (once), and it gets
    :data:`STAGE_STOP_TIMEOUT_S` to finish cleanly before SIGKILL. It gets SIGTERM if this process
    dies outright.
    """
    from snapflow_ros.nodes.node_process import parent_death_signal_options

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, env=env, bufsize=1,
                                   start_new_session=True, **parent_death_signal_options())

        def copy_output() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                echo("    " + line.rstrip())

        try:
            copy_output()
            return process.wait()
        except BaseException as exc:
            signum = exc.signum if isinstance(exc, StopRequested) else signal.SIGINT
            if process.poll() is None:
                process.send_signal(signum)
            killer = threading.Timer(STAGE_STOP_TIMEOUT_S, process.kill)
            killer.start()
            try:
                copy_output()  # what the stage prints while stopping ("resume with ...")
                process.wait()
            except BaseException:  # a second Ctrl-C: do not wait
                process.kill()
                process.wait()
                raise
            finally:
                killer.cancel()
            raise


def _record_demos_summary(out: Path, directory: str, log_path: Path) -> None:
    """Keep the recorder's JSON summary (its stdout) as ``<directory>/recording.json``."""
    lines = log_path.read_text(encoding="utf-8").splitlines()
    # The summary is the last indented JSON object printed; EGL may print after it.
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        raise RuntimeError(f"the demonstration recorder printed no summary; see {log_path}")
    end = lines.index("}", starts[-1])
    summary = json.loads("\n".join(lines[starts[-1]:end + 1]))
    if not summary.get("kept"):
        raise RuntimeError(f"no demonstration succeeded; see {log_path}")
    (out / directory / "recording.json").write_text(json.dumps(summary, indent=2) + "\n",
                                                    encoding="utf-8")


def check_settings(config: SimDemoConfig, out: Path, profile: str) -> None:
    """Refuse an output directory that holds a run of other settings; else record them."""
    path = out / SETTINGS_FILE
    current = {"profile": profile, **config_to_dict(config)}
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        # A setting added since that run matches it at its default (the behaviour before).
        changed = changed_settings(previous, current, config_to_dict(SimDemoConfig()))
        if changed:
            raise ConfigError(
                f"{out} holds a demo run with other settings ({', '.join(changed)} differ): "
                "choose another --out, or pass --restart to delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")


def _stage_env(stage: str, config: SimDemoConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if stage == "demos":
        env.setdefault("MUJOCO_GL", "egl")
    elif config.train_threads and stage in ("teacher", "snapflow", "offline"):
        env["OMP_NUM_THREADS"] = str(config.train_threads)
    return env


def _distribution_note(result: dict) -> str:
    """One line on the K-sample columns of an offline result; empty without them."""
    from snapflow_ros.evaluation.report import has_distribution_metrics

    if not has_distribution_metrics(result):
        return ""
    k = result.get("config", {}).get("samples_per_frame", "?")
    note = (f"K = {k} noise samples per frame (best-of-K MSE: the closest of the K; between "
            "modes / mode coverage: on frames with several recorded truths")
    multi = result.get("multi_truth")
    if not multi:
        return note + ").\n"
    counts = sorted({m["multi_truth_frames"] for entry in result.get("checkpoints", {}).values()
                     for m in entry.get("results", {}).values()
                     if m.get("multi_truth_frames") is not None})
    return note + f": {', '.join(map(str, counts)) or 0} frames; see offline_report/).\n"


def final_tables(out: Path) -> str:
    """Markdown of the offline and closed-loop results found in ``out``."""
    parts = []
    offline = out / "offline_eval.json"
    if offline.is_file():
        from snapflow_ros.evaluation.report import format_table as offline_table

        result = json.loads(offline.read_text(encoding="utf-8"))
        parts += ["## Offline: action MSE on held-out episodes", "", offline_table(result)]
        note = _distribution_note(result)
        if note:
            parts += ["", note]
    closed = out / "closed_loop.json"
    if closed.is_file():
        from snapflow_ros.evaluation.closed_loop import format_table as closed_loop_table

        parts += ["## Closed loop over ROS 2 (held-out seeds)", "",
                  closed_loop_table(json.loads(closed.read_text(encoding="utf-8")))]
    return "\n".join(parts)


def run_pipeline(config: SimDemoConfig, out: Path, *, profile: str, sim_python: str,
                 python: str = sys.executable, params_file: str | None = None,
                 stages: Sequence[str] = DEMO_STAGES, log: Callable[[str], None] = print,
                 runner: Callable[..., int] = run_command) -> dict:
    """Run the stages in order, skipping complete ones; returns per-stage timings.

    ``runner(command, log_path, env=...)`` runs one command (tests replace it). Raises
    :class:`ConfigError` on bad settings and :class:`RuntimeError` naming the failed stage.
    """
    check_settings(config, out, profile)
    commands = stage_commands(config, out, sim_python=sim_python, python=python,
                              params_file=params_file)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for index, stage in enumerate(DEMO_STAGES, start=1):
        header = f"[{index}/{len(DEMO_STAGES)}] {stage}"
        if stage not in stages:
            log(f"{header}: not requested")
            continue
        if stage_done(stage, config, out):
            previous = timings.get(stage, {}).get("wall_s")
            log(f"{header}: done already" + (f" (took {_format_seconds(previous)})"
                                              if previous else "") + ", skipped")
            continue
        log(f"{header}: running")
        started, cpu_before = time.monotonic(), _children_cpu_seconds()
        for number, command in enumerate(commands[stage]):
            command = _resume_flag(stage, command, out)
            log("  $ " + " ".join(command))
            log_path = out / "logs" / f"{stage}{f'_{number}' if number else ''}.log"
            code = runner(command, log_path, env=_stage_env(stage, config))
            if code == EXIT_INTERRUPTED:
                raise KeyboardInterrupt
            if code != 0:
                raise RuntimeError(f"stage {stage} failed (exit {code}); see {log_path}")
            if stage == "demos":
                _record_demos_summary(out, "demos" if number == 0 else "heldout_demos",
                                      log_path)
        wall = time.monotonic() - started
        cpu = _children_cpu_seconds() - cpu_before
        timings[stage] = {"wall_s": wall, "cpu_s": cpu,
                          "load_average": list(os.getloadavg())}
        timings_path.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
        log(f"{header}: done in {_format_seconds(wall)} (CPU {_format_seconds(cpu)})")
    return timings


def timing_table(timings: dict) -> str:
    """Markdown table of the stages' wall and CPU time."""
    lines = ["| Stage | Wall | CPU (all processes) |", "|---|---|---|"]
    total_wall = total_cpu = 0.0
    for stage in DEMO_STAGES:
        if stage in timings:
            wall, cpu = timings[stage]["wall_s"], timings[stage]["cpu_s"]
            total_wall += wall
            total_cpu += cpu
            lines.append(f"| {stage} | {_format_seconds(wall)} | {_format_seconds(cpu)} |")
    lines.append(f"| total | {_format_seconds(total_wall)} | {_format_seconds(total_cpu)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ CLI

def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow demo``."""
    from snapflow_ros.evaluation.closed_loop import default_sim_python

    parser.add_argument("--config", default="config/sim_demo.yaml", metavar="YAML",
                        help="demo settings (section snapflow_demo) and the nodes' parameters "
                             "(default config/sim_demo.yaml)")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--profile", metavar="NAME",
                         help="a profile of the snapflow_demo section (default quick; "
                              "config/sim_demo.yaml: quick, full, multimodal, insertion, "
                              "image_only)")
    profile.add_argument("--quick", dest="profile", action="store_const", const="quick",
                         help="the quick profile (default): under 30 minutes on 2 CPU cores")
    profile.add_argument("--full", dest="profile", action="store_const", const="full",
                         help="the full profile: more demonstrations, longer training, more "
                              "evaluation episodes (hours on a CPU)")
    parser.set_defaults(profile=DEFAULT_PROFILE)
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (default outputs/sim_demo_<profile>)")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE",
                        help="override a profile setting, e.g. --set demos=20 --set "
                             "policy.hidden_dim=64 (repeatable)")
    parser.add_argument("--stages", default=",".join(DEMO_STAGES), metavar="A,B",
                        help=f"stages to run (default all: {','.join(DEMO_STAGES)})")
    parser.add_argument("--sim-python", default=default_sim_python(), metavar="PATH",
                        help="Python of the simulator environment (default "
                             "<repo>/.venv-sim/bin/python)")
    parser.add_argument("--restart", action="store_true",
                        help="delete the output directory first and start over")


def run_demo(args: argparse.Namespace) -> int:
    """Run ``snapflow demo``: 0 done, 1 a stage failed, 130 stopped (bad settings raise)."""
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in DEMO_STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages: {', '.join(DEMO_STAGES)}")
    config = load_demo_config(args.config, args.profile, args.overrides)
    if not Path(args.sim_python).exists():
        raise ConfigError(f"the simulator environment's Python {args.sim_python} does not "
                          "exist: run `make setup-sim` or pass --sim-python")
    out = Path(args.out or f"outputs/sim_demo_{args.profile}")
    if args.restart and out.exists():
        shutil.rmtree(out)
    print(f"snapflow demo ({args.profile}): {config.task}, {config.demos} demonstrations, "
          f"teacher {config.teacher_steps} steps, SnapFlow {config.snapflow_steps} steps, "
          f"closed loop {config.eval_episodes} episodes per configuration (cross-fade "
          f"{config.blending}); output in {out}",
          flush=True)
    started = time.monotonic()
    try:
        timings = run_pipeline(config, out, profile=args.profile, sim_python=args.sim_python,
                               params_file=args.config, stages=stages,
                               log=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: the running stage was stopped
        print(f"interrupted: rerun the same command to continue from where it stopped "
              f"({out})", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = "\n".join([f"# snapflow demo ({args.profile})", "", "## Stage timings", "",
                         timing_table(timings), final_tables(out)])
    (out / "summary.md").write_text(summary, encoding="utf-8")
    print("\n" + summary, flush=True)
    print(f"this run: {_format_seconds(time.monotonic() - started)}; results in {out} "
          "(summary.md, offline_report/, closed_loop_report/)", flush=True)
    return EXIT_OK
