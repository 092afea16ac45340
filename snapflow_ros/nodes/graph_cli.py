# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow lifecycle`` and ``snapflow param``: the ``ros2 lifecycle`` / ``ros2 param`` calls.

For machines whose ROS 2 comes from PyPI wheels, without the ``ros2`` CLI. Values given to
``param set`` are parsed as YAML, as ``ros2 param set`` does (``5`` is an integer, ``0.5`` a
double, ``true`` a bool, ``[a, b]`` a list).
"""

from __future__ import annotations

import argparse
import sys

from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from snapflow_ros.config_loading import parse_value
from snapflow_ros.nodes.graph_client import TRANSITIONS, GraphClient, GraphClientError


def add_arguments_lifecycle(parser: argparse.ArgumentParser) -> None:
    """``snapflow lifecycle get NODE`` / ``snapflow lifecycle set NODE TRANSITION``."""
    parser.add_argument("action", choices=("get", "set"))
    parser.add_argument("node", help="node name, e.g. snapflow_policy")
    parser.add_argument("transition", nargs="?", choices=tuple(TRANSITIONS),
                        help="for `set`: the transition to request")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")


def run_lifecycle(args: argparse.Namespace) -> int:
    """Print the node's state, or request a transition; exit 1 if it was refused."""
    if args.action == "set" and not args.transition:
        print("snapflow lifecycle set: a transition is required", file=sys.stderr)
        return EXIT_BAD_INPUT
    with GraphClient("snapflow_lifecycle_cli") as client:
        try:
            if not client.wait_for_node(args.node.lstrip("/"), timeout=min(args.timeout, 10.0)):
                print(f"node {args.node} not found in the ROS graph", file=sys.stderr)
                return EXIT_FAILED
            if args.action == "get":
                print(client.lifecycle_state(args.node, timeout=args.timeout))
                return EXIT_OK
            ok = client.change_lifecycle_state(args.node, args.transition, timeout=args.timeout)
        except GraphClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print("Transitioning successful" if ok else "Transitioning failed")
        return EXIT_OK if ok else EXIT_FAILED


def add_arguments_param(parser: argparse.ArgumentParser) -> None:
    """``snapflow param get NODE NAME`` / ``snapflow param set NODE NAME VALUE``."""
    parser.add_argument("action", choices=("get", "set"))
    parser.add_argument("node")
    parser.add_argument("name")
    parser.add_argument("value", nargs="?", help="for `set`: the value (YAML syntax)")
    parser.add_argument("--timeout", type=float, default=10.0)


def run_param(args: argparse.Namespace) -> int:
    """Print a parameter's value, or set it and print the node's answer."""
    with GraphClient("snapflow_param_cli") as client:
        try:
            if not client.wait_for_node(args.node.lstrip("/"), timeout=args.timeout):
                print(f"node {args.node} not found in the ROS graph", file=sys.stderr)
                return EXIT_FAILED
            if args.action == "get":
                value = client.get_parameters(args.node, [args.name], args.timeout)[args.name]
                if value is None:
                    print(f"parameter {args.name} is not set", file=sys.stderr)
                    return EXIT_FAILED
                print(value)
                return EXIT_OK
            if args.value is None:
                print("snapflow param set: a value is required", file=sys.stderr)
                return EXIT_BAD_INPUT
            value = parse_value(args.value)
            ok, reason = client.set_parameters(args.node, {args.name: value},
                                               args.timeout)[args.name]
        except GraphClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print("Set parameter successful" if ok else f"Setting parameter failed: {reason}")
        return EXIT_OK if ok else EXIT_FAILED
