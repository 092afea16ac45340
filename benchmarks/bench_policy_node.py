#!/usr/bin/env python3
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""End-to-end latency of the policy node over ROS 2, and input loss at camera + joint rates.

Starts the policy node (a real process, shared-memory transport) on a compact-policy checkpoint
(the demo configuration, random weights, unless ``--checkpoint``), publishes 224x224 rgb8 images
at 30 Hz and joint states at 100 Hz, and measures for each step count:

- ``e2e``: arrival of the newest camera frame used -> publication of the trajectory (the node's
  own ``~/latency_ms`` topic, monotonic clock), with ``model`` and ``ros_overhead = e2e - model``;
- ``wire``: the camera message's header stamp -> receipt of the trajectory in this process;
- inputs published here vs accepted by the node (from ``/diagnostics``): dropped messages.

    .venv/bin/python benchmarks/bench_policy_node.py --duration 60 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

JOINTS = tuple(f"{side}_{name}" for side in ("left", "right") for name in (
    "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"))


def write_demo_checkpoint(folder: Path) -> Path:
    """The compact policy's demo configuration (128 px camera, 14 joints, H=50), untrained."""
    from snapflow_ros.policies.base import RobotInterface
    from snapflow_ros.policies.checkpoint import save_checkpoint
    from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
    from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
    from snapflow_ros.policies.normalization import NormalizationStats

    robot = RobotInterface(joint_names=JOINTS, camera_keys=("top",), image_height=128,
                           image_width=128)
    dims = len(JOINTS)
    stats = NormalizationStats(np.zeros(dims), np.ones(dims), np.zeros(dims),
                               np.full(dims, 0.01))
    policy = CompactFlowPolicy(CompactPolicyConfig(), robot, stats)
    return save_checkpoint(policy, folder, stage="snapflow", step=0, command="benchmark")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 / max / count of ``values`` (ms)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(array, 50)), "p95": float(np.percentile(array, 95)),
            "max": float(array.max()), "count": int(array.size)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table and optionally writes JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: demo config, random weights")
    parser.add_argument("--steps", default="1,10", help="step counts to measure")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per step count")
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--joint-hz", type=float, default=100.0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-act", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from snapflow_ros.cli.signals import install_stop_handlers
    from snapflow_ros.nodes.node_process import NodeProcess, isolated_ros_environment, ros_args

    install_stop_handlers()  # SIGTERM / SIGHUP stop the nodes as Ctrl-C does

    env = isolated_ros_environment()
    for key in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_LOG_DIR", "HOME"):
        os.environ[key] = env[key]
    workdir = Path(tempfile.mkdtemp(prefix="bench_policy_node_"))
    checkpoint = Path(args.checkpoint) if args.checkpoint else write_demo_checkpoint(
        workdir / "run")

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from snapflow_ros.nodes.graph_client import GraphClient

    node = NodeProcess("snapflow_ros.nodes.policy_node", env=env, name="policy_node",
                       log_path=workdir / "policy_node.log",
                       args=ros_args(params={
                           "checkpoint": str(checkpoint), "device": "cpu",
                           "camera_topics": ["camera/image_raw"], "n_act": args.n_act,
                           "max_delta_per_tick": [10.0], "first_command_max_distance": 100.0,
                           "diagnostics_period_s": 0.5}))
    node.start()
    client = GraphClient("bench_policy_node")
    results = {"config": vars(args), "machine": {"cpus": os.cpu_count()}, "results": {}}
    try:
        if not client.wait_for_node("snapflow_policy", 60):
            raise RuntimeError("policy node did not start:\n" + node.log_text())
        ros = client.node
        image_pub = ros.create_publisher(Image, "camera/image_raw", 10)
        joint_pub = ros.create_publisher(JointState, "joint_states", 10)
        size = args.image_size
        frame = np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8).tobytes()
        sent = {"image": 0, "joint": 0}
        publishing = {"on": True}
        latency_msgs, wire_ms, diagnostics = [], [], []

        def publish_image():
            if not publishing["on"]:
                return
            msg = Image(height=size, width=size, encoding="rgb8", step=3 * size, data=frame)
            msg.header.stamp = ros.get_clock().now().to_msg()
            image_pub.publish(msg)
            sent["image"] += 1

        def publish_joints():
            if not publishing["on"]:
                return
            msg = JointState(name=list(JOINTS), position=[0.0] * len(JOINTS))
            msg.header.stamp = ros.get_clock().now().to_msg()
            joint_pub.publish(msg)
            sent["joint"] += 1

        def on_trajectory(msg):
            now = ros.get_clock().now().nanoseconds
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            wire_ms.append((now - stamp) * 1e-6)

        ros.create_timer(1.0 / args.camera_hz, publish_image)
        ros.create_timer(1.0 / args.joint_hz, publish_joints)
        ros.create_subscription(Float64MultiArray, "snapflow_policy/latency_ms",
                                lambda m: latency_msgs.append(list(m.data)), 100)
        ros.create_subscription(JointTrajectory, "joint_trajectory", on_trajectory, 100)
        ros.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        if not client.change_lifecycle_state("snapflow_policy", "configure", 120):
            raise RuntimeError("configure failed:\n" + node.log_text())
        if not client.change_lifecycle_state("snapflow_policy", "activate", 30):
            raise RuntimeError("activate failed")
        labels = ("preprocess", "model", "postprocess", "guard", "input_to_publish")
        for steps in (int(s) for s in args.steps.split(",")):
            client.set_parameters("snapflow_policy", {"num_steps": steps})
            client.spin_for(2.0)  # settle on the new step count
            # Exact accounting: the node's counters are read while nothing is in flight (the
            # publishers pause for longer than two diagnostics periods around the window).
            publishing["on"] = False
            diagnostics.clear()
            client.spin_for(1.2)
            before = _accepted(diagnostics)
            sent_before = dict(sent)
            publishing["on"] = True
            latency_msgs.clear()
            wire_ms.clear()
            started = time.monotonic()
            client.spin_for(args.duration)
            elapsed = time.monotonic() - started
            publishing["on"] = False
            diagnostics.clear()
            client.spin_for(1.2)
            after = _accepted(diagnostics)
            publishing["on"] = True
            columns = {label: [m[i] for m in latency_msgs] for i, label in enumerate(labels)}
            overhead = [e - m for e, m in zip(columns["input_to_publish"], columns["model"])]
            sent_now = {k: sent[k] - sent_before[k] for k in sent}
            accepted = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            results["results"][str(steps)] = {
                "e2e_ms": percentiles(columns["input_to_publish"]),
                "model_ms": percentiles(columns["model"]),
                "preprocess_ms": percentiles(columns["preprocess"]),
                "ros_overhead_ms": percentiles(overhead),
                "wire_stamp_to_receipt_ms": percentiles(wire_ms),
                "chunks_per_s": len(latency_msgs) / elapsed,
                "published": sent_now, "accepted_by_node": accepted,
            }
    finally:
        client.close()
        node.stop()
    _print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _accepted(diagnostics: list) -> dict[str, int]:
    for array in reversed(diagnostics):
        for status in array.status:
            for kv in status.values:
                if kv.key == "inputs_accepted":
                    counts = json.loads(kv.value)
                    return {"image": counts.get("camera/top", 0),
                            "joint": counts.get("joint_state", 0)}
    return {}


def _print_table(results: dict) -> None:
    print("| steps | e2e p50 / p95 (ms) | model p50 | ROS overhead p50 / p95 | "
          "stamp->receipt p50 | images sent / accepted | joints sent / accepted |")
    print("|---|---|---|---|---|---|---|")
    for steps, r in results["results"].items():
        print(f"| {steps} | {r['e2e_ms']['p50']:.2f} / {r['e2e_ms']['p95']:.2f} | "
              f"{r['model_ms']['p50']:.2f} | {r['ros_overhead_ms']['p50']:.2f} / "
              f"{r['ros_overhead_ms']['p95']:.2f} | {r['wire_stamp_to_receipt_ms']['p50']:.2f} | "
              f"{r['published']['image']} / {r['accepted_by_node'].get('image')} | "
              f"{r['published']['joint']} / {r['accepted_by_node'].get('joint')} |")


if __name__ == "__main__":
    sys.exit(main())
