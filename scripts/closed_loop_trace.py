#!/usr/bin/env python3
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Trace one closed-loop episode against the scripted expert's episode of the same seed.

Runs the policy node against the lockstep sim robot for one held-out seed (as ``snapflow bench
sim`` does), records every joint state, and compares the trajectory with the expert's recording
of that seed (a held-out demo bag: the same scene, the same start). Reports, every 50 steps,
the *phase lag*: how many steps behind the expert the robot is (the expert step whose 14 joint
positions are closest to the robot's, searched up to the current step). Plots one joint of both
trajectories and the lag.

    .venv/bin/python scripts/closed_loop_trace.py --checkpoint outputs/sim_demo_full/teacher \
        --expert-bag outputs/sim_demo_full/heldout_demos/transfer_cube_seed100000 \
        --seed 100000 --steps 10 --sampler euler --out trace
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from snapflow_ros.cli.signals import install_stop_handlers
from snapflow_ros.data.bag_reader import find_bags, read_bag
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.evaluation.closed_loop import ClosedLoopCase, ClosedLoopConfig
from snapflow_ros.nodes.harness.closed_loop import ClosedLoopRunner
from snapflow_ros.sim.aloha_env import ALOHA_JOINT_NAMES

# The defaults read the simulator's recordings; images are decoded small since they are unused.
TOPICS = BagTopicsConfig(image_height=16, image_width=16)


def phase_lag(robot: np.ndarray, expert: np.ndarray) -> np.ndarray:
    """Per robot step t: t minus the expert step (<= t) whose joint positions are closest."""
    lags = np.zeros(len(robot), dtype=int)
    for t, q in enumerate(robot):
        candidates = expert[:min(t, len(expert) - 1) + 1]
        lags[t] = t - int(np.argmin(np.abs(candidates - q).max(axis=1)))
    return lags


def main(argv: list[str] | None = None) -> int:
    """Run the episode, print the lag table, write JSON and a plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--expert-bag", required=True, help="held-out demo bag of --seed")
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--steps", type=int, default=10, help="sampler steps")
    parser.add_argument("--sampler", default="euler", choices=("euler", "jump"))
    parser.add_argument("--n-act", type=int, default=10)
    parser.add_argument("--joint", default="right_shoulder", choices=ALOHA_JOINT_NAMES)
    parser.add_argument("--params-file", default="config/sim_demo.yaml")
    parser.add_argument("--out", default="closed_loop_trace", help="output prefix")
    args = parser.parse_args(argv)
    install_stop_handlers()  # SIGTERM / SIGHUP stop the nodes as Ctrl-C does

    bags = find_bags(args.expert_bag)
    if not bags:
        print(f"error: no bag at {args.expert_bag}", file=sys.stderr)
        return 2
    expert = np.asarray(read_bag(bags[0], TOPICS).state.values, dtype=np.float64)

    config = ClosedLoopConfig(episodes=1, seed_start=args.seed, params_file=args.params_file)
    case = ClosedLoopCase(name="trace", checkpoint=args.checkpoint, num_steps=args.steps,
                          sampler_mode=args.sampler, n_act=args.n_act)
    states: list[tuple[float, list[float]]] = []
    with ClosedLoopRunner(config) as runner:
        from sensor_msgs.msg import JointState

        def on_joints(msg: JointState) -> None:
            stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            states.append((stamp, list(msg.position)))

        runner.client.node.create_subscription(JointState, "/joint_states", on_joints, 1000)
        result = runner.run_episode(case, args.seed, 0)
    # The robot publishes only while stepping in lockstep: everything received is the episode
    # (after a stamp that goes back, only what follows it).
    stamps = [s for s, _ in states]
    start = max([i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]], default=0)
    robot = np.array([q for _, q in states[start:]])[:len(expert)]
    lags = phase_lag(robot, expert)
    joint = ALOHA_JOINT_NAMES.index(args.joint)
    table = {int(t): int(lags[t]) for t in range(0, len(lags), 50)}
    print(f"episode: max reward {result.max_reward:.0f}, success {result.success}, "
          f"{result.steps} steps")
    print("step:      " + " ".join(f"{t:5d}" for t in table))
    print("lag steps: " + " ".join(f"{v:5d}" for v in table.values()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({
        "checkpoint": args.checkpoint, "seed": args.seed, "steps": args.steps,
        "sampler": args.sampler, "n_act": args.n_act, "max_reward": result.max_reward,
        "success": result.success, "lag_every_50_steps": table,
        "robot": robot.tolist(), "expert": expert.tolist()}) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(expert[:, joint], label="scripted expert (recorded)")
    top.plot(robot[:, joint], label=f"policy in closed loop ({args.steps} step, n_act "
             f"{args.n_act})")
    top.set_ylabel(f"{args.joint} (rad)")
    top.legend()
    bottom.plot(lags)
    bottom.set_ylabel("phase lag (steps)")
    bottom.set_xlabel("control step (20 ms)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
