# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench budget``: closed-loop success of every checkpoint against training time.

Every checkpoint ``checkpoints/step_<n>`` of a teacher run (and optionally a SnapFlow run) is
evaluated in closed loop on the same held-out seeds, with the harness of ``snapflow bench sim``
(both nodes started once, one case per checkpoint and step count), and plotted against the
training time that checkpoint took (:mod:`snapflow_ros.evaluation.training_budget`)::

    snapflow bench budget --teacher runs/teacher --teacher-steps 10,1 --snapflow runs/snapflow
        --task transfer_cube --episodes 20 --json budget.json --report budget/

The JSON is that of ``bench sim`` (``config``, ``cases``, rewritten after every case, so
``--resume`` skips the checkpoints already evaluated) plus a ``budget`` section: per run and
checkpoint the step, training seconds, success with its 95% Wilson interval, mean max reward
and ``val_mse_10``. A run keeps only ``keep_checkpoints`` checkpoints (default 3): train with
``--set keep_checkpoints=100`` for a curve with more points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_FAILED, EXIT_OK
from snapflow_ros.config_fields import ConfigError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")\
            from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


def add_arguments_budget(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bench budget``."""
    from snapflow_ros.cli.bench import add_closed_loop_node_arguments
    from snapflow_ros.evaluation.closed_loop import EVAL_SEED_START, TASKS

    runs = parser.add_argument_group("training runs")
    runs.add_argument("--teacher", metavar="RUN", required=True,
                      help="teacher training run directory (checkpoints/step_*, metrics.jsonl)")
    runs.add_argument("--teacher-steps", type=_int_list, default=[10], metavar="10[,1]",
                      help="the teacher's sampler steps, one curve each (default 10; Euler)")
    runs.add_argument("--snapflow", metavar="RUN",
                      help="SnapFlow training run directory (a curve at --snapflow-steps)")
    runs.add_argument("--snapflow-steps", type=_int_list, default=[1], metavar="1",
                      help="SnapFlow's sampler steps, one curve each (default 1; chained jumps)")
    runs.add_argument("--snapflow-budget", choices=("own", "with-teacher"), default="own",
                      help="SnapFlow's training time: its own (default) or with the teacher's "
                           "time up to the checkpoint it was distilled from (its "
                           "init_checkpoint, a checkpoint of --teacher)")
    runs.add_argument("--every-nth", type=int, default=1, metavar="N",
                      help="every N-th checkpoint, counted back from the newest (default 1)")
    runs.add_argument("--steps-list", type=_int_list, default=None, metavar="1000,2000",
                      help="only the checkpoints at these training steps (in every run)")
    runs.add_argument("--train-world-size", type=int, default=1, metavar="N",
                      help="processes the runs trained on (torchrun; default 1): the global "
                           "batch for the time estimate and the process-hours")
    runs.add_argument("--train-threads", type=int, default=0, metavar="N",
                      help="CPU training: torch threads per process, to report CPU-hours "
                           "(default 0: not reported)")
    episodes = parser.add_argument_group("episodes")
    episodes.add_argument("--task", choices=TASKS, default="transfer_cube")
    episodes.add_argument("--episodes", type=int, default=10, metavar="N",
                          help="held-out episodes per checkpoint (default 10)")
    episodes.add_argument("--seed-start", type=int, default=EVAL_SEED_START, metavar="SEED",
                          help=f"first held-out seed (default {EVAL_SEED_START})")
    episodes.add_argument("--episode-steps", type=int, default=400, metavar="N",
                          help="control steps per episode (default 400 = 8 s)")
    episodes.add_argument("--image-size", type=int, default=0, metavar="PX",
                          help="camera image side (default: the checkpoints')")
    episodes.add_argument("--n-act", type=int, default=10, metavar="N",
                          help="actions executed per chunk (default 10)")
    add_closed_loop_node_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="OUT", help="write the results as JSON here "
                        "(rewritten after every checkpoint)")
    output.add_argument("--report", metavar="DIR", help="write report.md and "
                        "success_vs_budget.png into this directory (replaced)")
    output.add_argument("--target", type=float, default=0.5, metavar="RATE",
                        help="success rate drawn as the goal line (default 0.5; negative: none)")
    output.add_argument("--resume", action="store_true",
                        help="keep the checkpoints already in --json (same settings) and run "
                             "only the missing ones")


def budget_runs_from_args(args: argparse.Namespace) -> list:
    """The curves the flags ask for: the teacher at each step count, SnapFlow at each."""
    from snapflow_ros.evaluation.training_budget import (
        BudgetRun,
        init_checkpoint_step,
        training_seconds_at,
    )

    offset = 0.0
    if args.snapflow and args.snapflow_budget == "with-teacher":
        offset = training_seconds_at(args.teacher, init_checkpoint_step(args.snapflow),
                                     args.train_world_size)
    runs = [BudgetRun(label=f"teacher@{steps}", run_dir=str(args.teacher), num_steps=steps,
                      sampler_mode="euler") for steps in args.teacher_steps]
    if args.snapflow:
        runs += [BudgetRun(label=f"snapflow@{steps}", run_dir=str(args.snapflow),
                           num_steps=steps, sampler_mode="jump", offset_s=offset)
                 for steps in args.snapflow_steps]
    return runs


def _check_args(args: argparse.Namespace) -> None:
    for label, path in (("--teacher", args.teacher), ("--snapflow", args.snapflow)):
        if path and not Path(path).is_dir():
            raise ConfigError(f"{label} {path} is not a directory")
    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if args.every_nth < 1:
        raise ConfigError("--every-nth must be >= 1")
    if args.train_world_size < 1 or args.train_threads < 0:
        raise ConfigError("--train-world-size must be >= 1 and --train-threads >= 0")
    if any(steps < 1 for steps in (*args.teacher_steps, *args.snapflow_steps)):
        raise ConfigError("--teacher-steps and --snapflow-steps must be >= 1")


def run_budget(args: argparse.Namespace) -> int:
    """``snapflow bench budget``: 0 done, 1 a node failed (bad input raises ConfigError)."""
    from snapflow_ros.cli.bench import _checkpoint_image_size, _write_json, run_sim_benchmark
    from snapflow_ros.evaluation.closed_loop import ClosedLoopConfig, ClosedLoopError
    from snapflow_ros.evaluation.training_budget import (
        budget_cases,
        budget_result,
        format_budget_table,
        run_checkpoints,
        write_budget_report,
    )

    _check_args(args)
    runs = budget_runs_from_args(args)
    checkpoints = {run.label: run_checkpoints(run.run_dir, every_nth=args.every_nth,
                                              steps=args.steps_list, require_complete=True)
                   for run in runs}
    sizes = {_checkpoint_image_size(str(path)) for found in checkpoints.values()
             for _, path in found}
    if len(sizes) > 1 and not args.image_size:
        raise ConfigError(f"the checkpoints expect different image sizes {sorted(sizes)}")
    config = ClosedLoopConfig(
        task=args.task, episodes=args.episodes, seed_start=args.seed_start,
        episode_steps=args.episode_steps, image_size=args.image_size or sizes.pop(),
        sim_python=args.sim_python, params_file=args.params_file, device=args.device,
        policy_threads=args.policy_threads, blending=args.blending,
        blend_steps=args.blend_steps, episode_timeout_s=args.episode_timeout,
        log_dir=args.log_dir)
    cases = budget_cases(runs, checkpoints, n_act=args.n_act)
    extra = {"benchmark": {
        "kind": "budget", "teacher": str(args.teacher),
        "snapflow": str(args.snapflow) if args.snapflow else None, "n_act": args.n_act,
        "command": " ".join(getattr(args, "argv", None) or [])}}
    try:
        result = run_sim_benchmark(cases, config, json_path=args.json, resume=args.resume,
                                   extra=extra, log=lambda line: print(line, file=sys.stderr))
    except ClosedLoopError as exc:  # a ConfigError, but a node failing is not bad input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    result["budget"] = budget_result(runs, checkpoints, result, world_size=args.train_world_size,
                                     train_threads=args.train_threads)
    if args.json:
        _write_json(Path(args.json), result)
    if args.report:
        write_budget_report(result, args.report,
                            target=args.target if args.target >= 0 else None)
    print(format_budget_table(result["budget"]), end="")
    return EXIT_OK
