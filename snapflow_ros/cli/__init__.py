# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``snapflow`` command line: one entry point, one sub-command per job.

Each sub-command is a module defining ``add_arguments_<name>(parser)`` and
``run_<name>(args) -> int``: ``train``, ``export-lerobot``, ``export``, ``bags``, ``eval``,
``bench`` and ``demo`` live in this package; ``lifecycle``, ``param`` and ``bringup`` talk to
ROS 2 and live in :mod:`snapflow_ros.nodes`, registered here by name. Modules are imported only
when their command runs (or for ``--help``), so ``snapflow --help`` is quick and the ROS-free
commands work without ROS 2.

:func:`main` handles what every command shares: the exit codes of
:mod:`snapflow_ros.cli.exit_codes`, one-line error messages, and SIGINT / SIGTERM / SIGHUP
taking the same clean path (:mod:`snapflow_ros.cli.signals`), so that nodes a command started
are stopped whichever way it is stopped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Callable

from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from snapflow_ros.cli.signals import StopRequested, stop_signals_raise

DEBUG_ENV = "SNAPFLOW_DEBUG"
"""Set to 1 to print the full traceback of an unexpected error (as ``--debug`` does)."""

# name -> (module defining add_arguments_<name> and run_<name>, help text)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("snapflow_ros.cli.train", "Train a teacher or distil it with SnapFlow from rosbag2 "
              "recordings."),
    "export-lerobot": ("snapflow_ros.cli.export", "Export rosbag2 recordings as a "
                       "LeRobotDataset v3."),
    "export": ("snapflow_ros.cli.export", "Export a checkpoint: `export onnx` writes ONNX graphs "
               "and a manifest, checked against PyTorch."),
    "bags": ("snapflow_ros.cli.bags", "Inspect rosbag2 recordings: topics, types, counts, rates, "
             "episodes and the `snapflow train` flags that read them (`bags info PATH`)."),
    "eval": ("snapflow_ros.cli.eval", "Offline (or live) evaluation of checkpoints on held-out "
             "recordings."),
    "bringup": ("snapflow_ros.nodes.bringup", "Start the policy node and configure / activate "
                "it (for machines without `ros2 launch`)."),
    "bench": ("snapflow_ros.cli.bench", "Benchmarks: `latency`, `sim` (closed loop) and `budget` "
              "(closed loop per checkpoint)."),
    "demo": ("snapflow_ros.cli.demo", "The whole story on the simulated robot: demos, teacher, "
             "SnapFlow, evaluation."),
    "lifecycle": ("snapflow_ros.nodes.graph_cli", "Get or change a lifecycle node's state "
                  "(what `ros2 lifecycle get/set` does)."),
    "param": ("snapflow_ros.nodes.graph_cli", "Get or set a node's parameters "
              "(what `ros2 param get/set` does)."),
}

EPILOG = f"""\
exit codes: 0 done; 1 failed at run time; 2 bad input (one line naming the file, flag, topic or
mismatch); 130 stopped by Ctrl-C, SIGTERM or SIGHUP (nodes the command started are stopped first).
An unexpected error prints one line; --debug or {DEBUG_ENV}=1 prints its traceback."""


def _function(module: str, prefix: str, name: str) -> Callable:
    return getattr(importlib.import_module(module), f"{prefix}_{name.replace('-', '_')}")


def build_parser(available_only: bool = True) -> argparse.ArgumentParser:
    """The argument parser of every sub-command.

    One whose dependency (rclpy, lerobot) is not installed here is listed as needing it and says
    so when run; ``available_only=False`` raises instead.
    """
    parser = argparse.ArgumentParser(
        prog="snapflow", description="snapflow_ros: one-step flow-matching policies on ROS 2.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of an unexpected error (or {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            add_arguments = _function(module, "add_arguments", name)
        except ModuleNotFoundError as exc:
            if not available_only or not exc.name or exc.name.startswith("snapflow_ros"):
                raise
            # A dependency (rclpy, lerobot) is not installed here: say so when it is used.
            sub = subparsers.add_parser(name, help=f"{help_text} [needs {exc.name}]",
                                        add_help=False)
            sub.set_defaults(missing_module=exc.name)
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
    return parser


def _is_bad_input(exc: BaseException) -> bool:
    from snapflow_ros.config_fields import ConfigError

    if isinstance(exc, ConfigError):
        return True
    # BagError's module is loaded whenever one can have been raised; checking it this way
    # keeps the bag reader (and rosbags) out of commands that never read a bag.
    bag_reader = sys.modules.get("snapflow_ros.data.bag_reader")
    return bag_reader is not None and isinstance(exc, bag_reader.BagError)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command with the shared error handling; returns the exit code."""
    module, _ = SUBCOMMANDS[args.command]
    if getattr(args, "missing_module", None):
        print(f"error: snapflow {args.command} needs the Python module {args.missing_module}, "
              "which is not installed here", file=sys.stderr)
        return EXIT_FAILED
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with stop_signals_raise():
            return int(_function(module, "run", args.command)(args) or 0)
    except StopRequested as exc:
        print(f"stopped ({signal_name(exc.signum)})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        if _is_bad_input(exc):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if debug:
            traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: unexpected {type(exc).__name__}: {first_line}"
              + ("" if debug else f" (--debug or {DEBUG_ENV}=1 for the traceback)"),
              file=sys.stderr)
        return EXIT_FAILED


def signal_name(signum: int) -> str:
    """``15`` -> ``"SIGTERM"``."""
    return signal.Signals(signum).name


def main(argv: list[str] | None = None) -> int:
    """Run ``snapflow COMMAND ...``; returns the process exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "missing_module", None):
        parser.parse_args(argv)  # argparse's own error for them (exit 2)
    # The exact command line, recorded in checkpoints and reports.
    args.argv = ["snapflow", *argv]
    if not args.command:
        parser.print_help()
        return EXIT_BAD_INPUT
    return run_command(args)
