#!/usr/bin/env python3
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Soak: the policy node against the simulated robot for a long run, sampled over time.

Starts the simulated robot (gym-aloha TransferCube, real time, in the simulator environment) and
the policy node on a checkpoint, plus extra 30 Hz camera and 100 Hz joint-state load on topics
the node also reads, and every ``--sample-s`` seconds records the node's resident memory,
latency percentiles of the last window, accepted / rejected inputs and guard interventions. The
summary reports memory growth, latency drift (last window vs first), dropped inputs and guard
interventions; ``--json`` keeps the time series and ``--plot`` draws it.

    .venv/bin/python benchmarks/soak_policy_node.py --duration 1800 --json soak.json \
        --plot soak.png [--checkpoint runs/demo/snapflow]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_policy_node import JOINTS, write_demo_checkpoint  # noqa: E402


def resident_mib(pid: int) -> float:
    """Resident set size of a process (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the soak; prints a summary, optionally JSON and a plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: demo config, random weights")
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--sim-python", default=str(REPO / ".venv-sim" / "bin" / "python"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)

    from snapflow_ros.cli.signals import install_stop_handlers
    from snapflow_ros.nodes.node_process import NodeProcess, isolated_ros_environment, ros_args

    install_stop_handlers()  # SIGTERM / SIGHUP stop the nodes as Ctrl-C does

    env = isolated_ros_environment()
    for key in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_LOG_DIR", "HOME"):
        os.environ[key] = env[key]
    workdir = Path(tempfile.mkdtemp(prefix="soak_policy_node_"))
    checkpoint = args.checkpoint or str(write_demo_checkpoint(workdir / "run"))

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    from snapflow_ros.nodes.graph_client import GraphClient

    sim = NodeProcess("snapflow_ros.nodes.sim_robot_node", python=args.sim_python, env=env,
                      log_path=workdir / "sim.log",
                      args=ros_args(params={"task": "transfer_cube", "mode": "realtime",
                                            "auto_reset": True}))
    policy = NodeProcess("snapflow_ros.nodes.policy_node", env=env, name="policy_node",
                         log_path=workdir / "policy.log",
                         args=ros_args(params={
                             "checkpoint": checkpoint, "device": "cpu",
                             "camera_topics": ["camera/image_raw"], "n_act": 10,
                             "diagnostics_period_s": 1.0}))
    sim.start()
    policy.start()
    client = GraphClient("soak_policy_node")
    samples, latencies, diagnostics = [], [], []
    try:
        for name, proc in (("sim_robot", sim), ("snapflow_policy", policy)):
            if not client.wait_for_node(name, 120):
                raise RuntimeError(f"{name} did not start:\n{proc.log_text()[-3000:]}")
        ros = client.node
        ros.create_subscription(Float64MultiArray, "snapflow_policy/latency_ms",
                                lambda m: latencies.append(list(m.data)), 100)
        ros.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        # Extra load at the rates of a real camera (30 Hz) and arm driver (100 Hz): the sim's
        # latest frame and joint positions relayed with fresh stamps, so every input the node
        # decodes is a real observation.
        image_pub = ros.create_publisher(Image, "camera/image_raw", 5)
        joint_pub = ros.create_publisher(JointState, "joint_states", 10)
        sent = {"image": 0, "joint": 0}
        last_positions = {"value": [0.0] * len(JOINTS)}
        last_image = {"msg": None}

        def on_sim_joints(msg):
            if len(msg.position) == len(JOINTS):
                last_positions["value"] = list(msg.position)

        def on_sim_image(msg):
            last_image["msg"] = msg

        def publish_image():
            msg = last_image["msg"]
            if msg is None:
                return
            msg.header.stamp = ros.get_clock().now().to_msg()
            image_pub.publish(msg)
            sent["image"] += 1

        def publish_joints():
            msg = JointState(name=list(JOINTS), position=last_positions["value"])
            msg.header.stamp = ros.get_clock().now().to_msg()
            joint_pub.publish(msg)
            sent["joint"] += 1

        ros.create_subscription(JointState, "joint_states", on_sim_joints, 10)
        ros.create_subscription(Image, "camera/image_raw", on_sim_image, 5)
        ros.create_timer(1 / 30, publish_image)
        ros.create_timer(1 / 100, publish_joints)
        for transition in ("configure", "activate"):
            if not client.change_lifecycle_state("snapflow_policy", transition, 120):
                raise RuntimeError(f"{transition} failed:\n{policy.log_text()[-3000:]}")
        start = time.monotonic()
        while time.monotonic() - start < args.duration:
            latencies.clear()
            client.spin_for(args.sample_s)
            values = _latest(diagnostics)
            e2e = [m[-1] for m in latencies]
            samples.append({
                "t_s": round(time.monotonic() - start, 1),
                "rss_mib": resident_mib(policy.process.pid),
                "e2e_ms_p50": float(np.percentile(e2e, 50)) if e2e else None,
                "e2e_ms_p95": float(np.percentile(e2e, 95)) if e2e else None,
                "model_ms_p50": float(np.percentile([m[1] for m in latencies], 50))
                if latencies else None,
                "chunks": len(latencies),
                "accepted": values.get("inputs_accepted", {}),
                "rejected": values.get("inputs_rejected", {}),
                "guard": values.get("guard", {}),
                "sent_extra": dict(sent),
            })
            print(json.dumps(samples[-1]), flush=True)
    finally:
        client.close()
        policy.stop()
        sim.stop()
    summary = _summarise(samples)
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "samples": samples},
                                              indent=2))
    if args.plot:
        _plot(samples, args.plot)
    return 0


def _latest(diagnostics: list) -> dict:
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.startswith("snapflow_policy"):
                return {kv.key: _parse(kv.value) for kv in status.values}
    return {}


def _parse(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _summarise(samples: list[dict]) -> dict:
    if len(samples) < 2:
        return {"samples": len(samples)}
    first, last = samples[0], samples[-1]
    rss = [s["rss_mib"] for s in samples]
    windows = max(1, len(samples) // 10)
    early = [s["e2e_ms_p50"] for s in samples[:windows] if s["e2e_ms_p50"] is not None]
    late = [s["e2e_ms_p50"] for s in samples[-windows:] if s["e2e_ms_p50"] is not None]
    return {
        "duration_s": last["t_s"],
        "rss_mib_first": first["rss_mib"], "rss_mib_last": last["rss_mib"],
        "rss_mib_max": max(rss), "rss_growth_mib": last["rss_mib"] - first["rss_mib"],
        "e2e_ms_p50_first_10pct": float(np.mean(early)) if early else None,
        "e2e_ms_p50_last_10pct": float(np.mean(late)) if late else None,
        "chunks": sum(s["chunks"] for s in samples),
        "inputs_accepted": last["accepted"], "inputs_rejected": last["rejected"],
        "extra_inputs_sent": last["sent_extra"], "guard_interventions": last["guard"],
    }


def _plot(samples: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(t, [s["rss_mib"] for s in samples])
    ax1.set_ylabel("policy node RSS (MiB)")
    ax2.plot(t, [s["e2e_ms_p50"] for s in samples], label="e2e p50")
    ax2.plot(t, [s["e2e_ms_p95"] for s in samples], label="e2e p95")
    ax2.plot(t, [s["model_ms_p50"] for s in samples], label="model p50")
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("minutes")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
