# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bringup``: what ``ros2 launch snapflow_ros policy.launch.py`` does, without launch.

Starts the policy node as a process with the parameter file, overrides and remaps (passed as
``--ros-args --param NAME:=VALUE --remap FROM:=TO``), configures and activates it (unless
``--no-autostart``), then waits. Ctrl-C, SIGTERM (systemd, ``docker stop``) and SIGHUP all stop
the node the same way (SIGINT to it, SIGKILL after a timeout) and exit 0; if bringup itself is
killed outright, the node gets SIGTERM from the kernel (see :mod:`snapflow_ros.nodes.node_process`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_FAILED, EXIT_OK
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.nodes.node_process import NodeProcess, ros_args

NODE_NAME = "snapflow_policy"


def default_params_file() -> Path | None:
    """``config/policy.yaml`` of the source tree, or of the installed package share folder."""
    source = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"
    if source.is_file():
        return source
    installed = Path(sys.prefix) / "share" / "snapflow_ros" / "config" / "policy.yaml"
    return installed if installed.is_file() else None


def add_arguments_bringup(parser: argparse.ArgumentParser) -> None:
    """Flags of ``snapflow bringup`` (the launch file's arguments)."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint or run directory")
    parser.add_argument("--params-file", default=None,
                        help="parameter file (default: the package's config/policy.yaml)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="parameter override, repeatable (YAML value)")
    parser.add_argument("-r", "--remap", action="append", default=[], metavar="FROM:=TO",
                        help="topic remap, repeatable")
    parser.add_argument("--no-autostart", action="store_true",
                        help="start unconfigured (drive it with `snapflow lifecycle set`)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed for start-up and configure")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        if ":=" not in item:
            raise ConfigError(f"{what} '{item}' must look like NAME:=VALUE")
        key, value = item.split(":=", 1)
        pairs[key] = value
    return pairs


def bringup_node_args(args: argparse.Namespace) -> list[str]:
    """The policy node's ``--ros-args`` for the parsed ``snapflow bringup`` flags."""
    from snapflow_ros.config_loading import parse_value

    params = {k: parse_value(v) for k, v in _pairs(args.param, "parameter").items()}
    params["checkpoint"] = str(Path(args.checkpoint).resolve())
    if args.device:
        params["device"] = args.device
    params_file = args.params_file or default_params_file()
    return ros_args(params=params, params_file=params_file, remaps=_pairs(args.remap, "remap"))


def run_bringup(args: argparse.Namespace) -> int:
    """Start, configure and activate the policy node; return its exit code (0 when stopped)."""
    from snapflow_ros.nodes.graph_client import GraphClient

    node = NodeProcess("snapflow_ros.nodes.policy_node", name=NODE_NAME,
                       args=bringup_node_args(args), env=dict(os.environ))
    node.start()
    print(f"started {NODE_NAME} (pid {node.process.pid}, log {node.log_path})", flush=True)
    try:
        with GraphClient("snapflow_bringup") as client:
            if not client.wait_for_node(NODE_NAME, timeout=args.timeout):
                print(f"{NODE_NAME} did not appear:\n{node.log_text()}", file=sys.stderr)
                return EXIT_FAILED
            if not args.no_autostart:
                for transition in ("configure", "activate"):
                    if not client.change_lifecycle_state(NODE_NAME, transition, args.timeout):
                        print(f"{transition} failed:\n{node.log_text()[-4000:]}",
                              file=sys.stderr)
                        return EXIT_FAILED
                    print(f"{transition}: ok")
        print(f"{NODE_NAME} is {'active' if not args.no_autostart else 'unconfigured'}; "
              "Ctrl-C to stop", flush=True)
        while node.running:
            time.sleep(0.5)
        return node.process.returncode or EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP through snapflow_ros.cli.main
        return EXIT_OK
    finally:
        node.stop(timeout=10)
