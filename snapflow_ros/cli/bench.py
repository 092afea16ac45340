# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench``: benchmarks, one sub-mode each.

``snapflow bench sim`` runs the closed-loop benchmark on the simulated robot over ROS 2
(:mod:`snapflow_ros.nodes.harness.closed_loop`): the teacher at 10 steps, the teacher at 1 step
(the naive one-step baseline), the SnapFlow model at 1 step, and an ``n_act`` sweep of SnapFlow
at 1 step and the teacher at 10 steps (chunk 50, n_act 1 / 3 / 5 / 10 / 20 as in the SnapFlow
paper's Table 9), all on the same held-out seeds. It writes JSON, a markdown table and plots::

    snapflow bench sim --teacher runs/teacher --snapflow runs/snapflow --task transfer_cube
        --episodes 50 --seed-start 100000 --n-act-sweep 1,3,5,10,20
        --json bench_sim.json --report bench_sim/

Modes: each lives in its own module defining ``add_arguments_<mode>(parser)`` and
``run_<mode>(args) -> int`` (:data:`BENCH_MODES`); a mode whose module is not installed is left
out of ``--help``. Exit codes: 0 done, 2 bad input, 1 a node failed, 130 interrupted (Ctrl-C,
SIGTERM or SIGHUP: the nodes are stopped first; the configurations done so far stay in
``--json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from snapflow_ros.config_fields import ConfigError, changed_settings, config_to_dict

# mode -> (module defining add_arguments_<mode> / run_<mode>, help text)
BENCH_MODES: dict[str, tuple[str, str]] = {
    "sim": ("snapflow_ros.cli.bench", "Closed-loop success on the simulated robot "
            "over ROS 2: teacher, naive one-step, SnapFlow one-step, n_act sweep."),
    "latency": ("snapflow_ros.cli.bench_latency", "Policy latency per step count."),
    "budget": ("snapflow_ros.cli.bench_budget", "Closed-loop success of every checkpoint of a "
               "training run against its training time."),
}
DEFAULT_SWEEP = (1, 3, 5, 10, 20)


def _mode_function(module: str, prefix: str, mode: str):
    return getattr(importlib.import_module(module), f"{prefix}_{mode}")


def add_arguments_bench(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bench``: one sub-parser per available mode."""
    modes = parser.add_subparsers(dest="bench_mode", metavar="MODE")
    for mode, (module, help_text) in BENCH_MODES.items():
        try:
            add_arguments = _mode_function(module, "add_arguments", mode)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("snapflow_ros"):
                continue
            raise
        add_arguments(modes.add_parser(mode, help=help_text, description=help_text))


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen ``snapflow bench`` mode; returns its exit code."""
    mode = getattr(args, "bench_mode", None)
    if not mode:
        print("error: choose a benchmark: " + ", ".join(BENCH_MODES), file=sys.stderr)
        return EXIT_BAD_INPUT
    module, _ = BENCH_MODES[mode]
    return int(_mode_function(module, "run", mode)(args) or 0)


# --------------------------------------------------------------------------- sim mode

def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")\
            from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {text!r}")
    return values


def add_closed_loop_node_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the nodes' flags of a closed-loop benchmark (``bench sim``, ``bench budget``).

    Simulator Python, parameter file, device, policy threads, cross-fade, episode timeout and
    log folder.
    """
    from snapflow_ros.runtime.chunk_scheduler import BLENDINGS

    runtime = parser.add_argument_group("nodes")
    runtime.add_argument("--sim-python", metavar="PATH", default="",
                         help="Python of the simulator environment (default "
                              "<repo>/.venv-sim/bin/python)")
    runtime.add_argument("--params-file", metavar="YAML", default="",
                         help="ROS parameter file for sim_robot and snapflow_policy (e.g. "
                              "config/sim_demo.yaml); the benchmark's own settings win")
    runtime.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                         help="the policy node's device (default cpu)")
    runtime.add_argument("--policy-threads", type=int, default=1, metavar="N",
                         help="torch threads of the policy node (default 1; 0: torch's)")
    runtime.add_argument("--blending", default="none", choices=BLENDINGS,
                         help="the policy node's cross-fade from one chunk into the next "
                              "(default none: each chunk replaces the plan)")
    runtime.add_argument("--blend-steps", type=int, default=5, metavar="N",
                         help="length of the cross-fade in control ticks (default 5)")
    runtime.add_argument("--episode-timeout", type=float, default=900.0, metavar="S",
                         help="wall seconds before an episode is abandoned (default 900)")
    runtime.add_argument("--log-dir", metavar="DIR", default="",
                         help="keep the nodes' logs here (default: a temporary directory)")


def add_arguments_sim(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bench sim``."""
    from snapflow_ros.evaluation.closed_loop import EVAL_SEED_START, TASKS

    models = parser.add_argument_group("models")
    models.add_argument("--teacher", metavar="CKPT", required=True,
                        help="teacher checkpoint or training run directory")
    models.add_argument("--snapflow", metavar="CKPT",
                        help="SnapFlow checkpoint or run directory (without it: teacher only)")
    models.add_argument("--teacher-steps", type=int, default=10, metavar="N",
                        help="the teacher's sampler steps (default 10, as pi0 / SmolVLA)")
    episodes = parser.add_argument_group("episodes")
    episodes.add_argument("--task", choices=TASKS, default="transfer_cube")
    episodes.add_argument("--episodes", type=int, default=10, metavar="N",
                          help="held-out episodes per configuration (default 10)")
    episodes.add_argument("--seed-start", type=int, default=EVAL_SEED_START, metavar="SEED",
                          help=f"first held-out seed (default {EVAL_SEED_START}; training "
                               "demonstrations use seeds below it)")
    episodes.add_argument("--episode-steps", type=int, default=400, metavar="N",
                          help="control steps per episode (default 400 = 8 s)")
    episodes.add_argument("--image-size", type=int, default=0, metavar="PX",
                          help="camera image side (default: the checkpoint's)")
    episodes.add_argument("--n-act", type=int, default=10, metavar="N",
                          help="actions executed per chunk in the main comparison "
                               "(default 10)")
    episodes.add_argument("--n-act-sweep", type=_int_list, default=list(DEFAULT_SWEEP),
                          metavar="1,3,5,10,20",
                          help="n_act values of the execution-horizon sweep (default "
                               "1,3,5,10,20; empty string: no sweep)")
    episodes.add_argument("--sweep-episodes", type=int, default=0, metavar="N",
                          help="episodes per sweep point (default: --episodes)")
    add_closed_loop_node_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="OUT", help="write the results as JSON here "
                        "(rewritten after every configuration)")
    output.add_argument("--report", metavar="DIR",
                        help="write report.md and PNG plots into this directory (replaced)")
    output.add_argument("--resume", action="store_true",
                        help="keep the configurations already in --json (same settings) and "
                             "run only the missing ones")


def sim_benchmark_cases(teacher: str, snapflow: str | None, *, teacher_steps: int = 10,
                        n_act: int = 10, sweep: list[int] | tuple[int, ...] = DEFAULT_SWEEP,
                        sweep_episodes: int = 0) -> list:
    """The benchmark's configurations: main comparison first, then the n_act sweep.

    Main: ``teacher@<k>`` (Euler), ``teacher@1`` (the naive one-step baseline) and
    ``snapflow@1`` (the one-step jump), at ``n_act``. Sweep: ``snapflow@1`` and
    ``teacher@<k>`` at every ``n_act`` in ``sweep``; a sweep point equal to a main case is
    that case.
    """
    from snapflow_ros.evaluation.closed_loop import ClosedLoopCase

    teacher_label = f"teacher@{teacher_steps}"
    main = [ClosedLoopCase(name=teacher_label, checkpoint=str(teacher), num_steps=teacher_steps,
                           sampler_mode="euler", n_act=n_act, role="teacher",
                           series=teacher_label if n_act in sweep else "")]
    if teacher_steps != 1:
        main.append(ClosedLoopCase(name="teacher@1", checkpoint=str(teacher), num_steps=1,
                                   sampler_mode="euler", n_act=n_act, role="naive"))
    swept = [(teacher_label, str(teacher), teacher_steps, "euler")]
    if snapflow:
        main.append(ClosedLoopCase(name="snapflow@1", checkpoint=str(snapflow), num_steps=1,
                                   sampler_mode="jump", n_act=n_act, role="snapflow",
                                   series="snapflow@1" if n_act in sweep else ""))
        swept.insert(0, ("snapflow@1", str(snapflow), 1, "jump"))
    cases = list(main)
    for value in sweep:
        if value == n_act:
            continue
        for label, checkpoint, steps, mode in swept:
            cases.append(ClosedLoopCase(
                name=f"{label} n_act={value}", checkpoint=checkpoint, num_steps=steps,
                sampler_mode=mode, n_act=value, role="sweep", series=label,
                episodes=sweep_episodes))
    return cases


def machine_description() -> dict:
    """Where a benchmark ran: host, CPU count, load average, Python and torch versions."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "processor": platform.processor()}
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _checkpoint_image_size(path: str) -> int:
    from snapflow_ros.policies.checkpoint import checkpoint_robot

    robot = checkpoint_robot(path)
    if robot.image_height != robot.image_width:
        raise ConfigError(f"{path}: the simulated camera is square; the checkpoint expects "
                          f"{robot.image_height}x{robot.image_width}")
    return int(robot.image_height)


def previous_cases(path: Path | None, config: dict, defaults: dict | None = None) -> dict:
    """Cases of an earlier run in ``path`` whose settings match ``config`` (for --resume).

    A setting the earlier run did not record (it predates the setting) counts at its value in
    ``defaults``, so that a new setting left at its default does not restart a long run.
    """
    if path is None or not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    changed = changed_settings(previous.get("config", {}), config, defaults)
    if changed:
        print(f"note: {path} was written with other settings ({', '.join(changed)} differ); "
              "starting over", file=sys.stderr)
        return {}
    return dict(previous.get("cases", {}))


def run_sim_benchmark(cases: list, config, *, json_path: str | Path | None = None,
                      report_dir: str | Path | None = None, resume: bool = False,
                      extra: dict | None = None, log=print) -> dict:
    """Run ``cases`` in closed loop with ``config``; write JSON (after each case) and a report.

    With ``resume``, cases already in ``json_path`` (same config and case settings) are kept.
    Returns the result (``complete`` is True once every case ran).
    """
    from snapflow_ros.evaluation.closed_loop import format_table, write_closed_loop_report
    from snapflow_ros.nodes.harness.closed_loop import run_closed_loop

    json_file = Path(json_path) if json_path else None
    config_dict = config_to_dict(config)
    done = (previous_cases(json_file, config_dict, config_to_dict(type(config)()))
            if resume else {})
    done = {name: entry for name, entry in done.items()
            if any(c.name == name and config_to_dict(c) == entry["case"] for c in cases)}
    result: dict[str, Any] = {"config": config_dict, "cases": {}, "complete": False,
                              "machine": machine_description(), **(extra or {})}
    todo = [case for case in cases if case.name not in done]
    if done:
        log(f"resuming: {len(done)} configuration(s) already done, {len(todo)} to run")

    def ordered(partial: dict) -> dict:
        return {c.name: partial[c.name] for c in cases if c.name in partial}

    def save(name: str, entry: dict) -> None:
        done[name] = entry
        result["cases"] = ordered(done)
        if json_file is not None:
            _write_json(json_file, result)

    started = time.monotonic()
    if todo:
        run_closed_loop(todo, config, log=log, on_case=save)
    result["cases"] = ordered(done)
    result["complete"] = True
    result["seconds"] = time.monotonic() - started  # this run only (not resumed cases)
    if json_file is not None:
        _write_json(json_file, result)
    if report_dir:
        write_closed_loop_report(result, report_dir)
    log(format_table(result))
    return result


def run_sim(args: argparse.Namespace) -> int:
    """``snapflow bench sim``: 0 done, 1 a node failed (bad input raises ConfigError)."""
    from snapflow_ros.evaluation.closed_loop import ClosedLoopConfig, ClosedLoopError

    for label, path in (("--teacher", args.teacher), ("--snapflow", args.snapflow)):
        if path and not Path(path).exists():
            raise ConfigError(f"{label} {path} does not exist")
    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    image_size = args.image_size or _checkpoint_image_size(args.teacher)
    if args.snapflow and _checkpoint_image_size(args.snapflow) != image_size:
        raise ConfigError("the teacher and SnapFlow checkpoints expect different image sizes")
    config = ClosedLoopConfig(
        task=args.task, episodes=args.episodes, seed_start=args.seed_start,
        episode_steps=args.episode_steps, image_size=image_size,
        sim_python=args.sim_python, params_file=args.params_file, device=args.device,
        policy_threads=args.policy_threads, blending=args.blending,
        blend_steps=args.blend_steps, episode_timeout_s=args.episode_timeout,
        log_dir=args.log_dir)
    cases = sim_benchmark_cases(args.teacher, args.snapflow, teacher_steps=args.teacher_steps,
                                n_act=args.n_act, sweep=args.n_act_sweep,
                                sweep_episodes=args.sweep_episodes)
    extra = {"benchmark": {
        "teacher": str(args.teacher), "snapflow": str(args.snapflow) if args.snapflow else None,
        "teacher_steps": args.teacher_steps, "n_act": args.n_act,
        "n_act_sweep": list(args.n_act_sweep), "sweep_episodes": args.sweep_episodes,
        "command": " ".join(getattr(args, "argv", None) or [])}}
    try:
        run_sim_benchmark(cases, config, json_path=args.json, report_dir=args.report,
                          resume=args.resume, extra=extra)
    except ClosedLoopError as exc:  # a ConfigError, but a node failing is not bad input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK

