# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``snapflow`` command line: one entry point, one sub-command per job.

Sub-commands import their heavy dependencies (torch, rclpy) only when they run, so ``snapflow
--help`` is instant and the ROS-free commands work without a ROS installation.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# name -> (module defining add_arguments_<name> and run_<name>, help text)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "lifecycle": ("snapflow_ros.nodes.graph_cli", "Get or change a lifecycle node's state "
                  "(what `ros2 lifecycle get/set` does)."),
    "param": ("snapflow_ros.nodes.graph_cli", "Get or set a node's parameters "
              "(what `ros2 param get/set` does)."),
}


def register(name: str, module: str, help_text: str) -> None:
    """Add a sub-command implemented by ``module`` (``add_arguments_<name>``, ``run_<name>``)."""
    SUBCOMMANDS[name] = (module, help_text)


for _name, _module, _help in (
    ("train", "snapflow_ros.training.train_cli", "Train a teacher or distil it with SnapFlow "
     "from rosbag2 recordings."),
    ("export-lerobot", "snapflow_ros.data.export_cli", "Export rosbag2 recordings as a "
     "LeRobotDataset v3."),
    ("eval", "snapflow_ros.evaluation.eval_cli", "Offline (or live) evaluation of checkpoints "
     "on held-out recordings."),
    ("bringup", "snapflow_ros.nodes.bringup", "Start the policy node and configure / activate it "
     "(for machines without `ros2 launch`)."),
    ("bench", "snapflow_ros.evaluation.bench_cli", "Benchmarks: `latency` and `sim` "
     "(closed loop)."),
    ("demo", "snapflow_ros.sim_demo", "The whole story on the simulated robot: "
     "demos, teacher, SnapFlow, evaluation."),
):
    register(_name, _module, _help)


def _function(module: str, prefix: str, name: str) -> Callable:
    return getattr(importlib.import_module(module), f"{prefix}_{name.replace('-', '_')}")


def build_parser(available_only: bool = True) -> argparse.ArgumentParser:
    """The argument parser; sub-commands whose module is not installed are left out."""
    parser = argparse.ArgumentParser(
        prog="snapflow", description="snapflow_ros: one-step flow-matching policies on ROS 2.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            add_arguments = _function(module, "add_arguments", name)
        except ModuleNotFoundError as exc:
            if available_only and exc.name and exc.name.startswith("snapflow_ros"):
                continue
            raise
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``snapflow COMMAND ...``; returns the process exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    # The exact command line, recorded in checkpoints and reports.
    args.argv = ["snapflow", *argv]
    if not args.command:
        parser.print_help()
        return 2
    module, _ = SUBCOMMANDS[args.command]
    try:
        return int(_function(module, "run", args.command)(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
