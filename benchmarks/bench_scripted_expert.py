# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Success rate and speed of the scripted ALOHA expert, per task.

For N seeds per task: planning (the end-effector pass and the headless tracking-correction
replay), the joint-space replay with rendering (the demonstration) and writing the rosbag2, each
timed. Prints a table and writes JSON.

Run in the simulator environment::

    .venv-sim/bin/python benchmarks/bench_scripted_expert.py --episodes 50
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from snapflow_ros.sim.aloha_env import TASKS, AlohaSim, AlohaSimConfig
from snapflow_ros.sim.demo_recording import TRAIN_SEED_START, bag_name, write_demonstration_bag
from snapflow_ros.sim.scripted_expert import ARM_JOINTS, ScriptedExpert


def bench_task(task: str, seeds: list[int], image_size: int, write_bags: bool,
               progress: bool, tracking_corrections: int) -> dict:
    """Run the expert on ``seeds``; returns counts, failed seeds and timings (seconds)."""
    sim = AlohaSim(AlohaSimConfig(task=task, image_size=image_size))
    expert = ScriptedExpert(task, tracking_corrections=tracking_corrections)
    plan_s = replay_s = write_s = 0.0
    steps = 0
    succeeded, failed, first_success_steps, ee_rewards, tracking = [], [], [], [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_expert_") as tmp:
        for i, seed in enumerate(seeds):
            t0 = time.perf_counter()
            plan = expert.plan(seed)
            t1 = time.perf_counter()
            demo = expert.replay(plan, sim)
            t2 = time.perf_counter()
            plan_s += t1 - t0
            replay_s += t2 - t1
            steps += demo.num_steps
            # How closely the rendered replay follows the end-effector pass's joint path.
            tracking.append(np.abs(demo.qpos[1:, ARM_JOINTS]
                                   - plan.reference[:-1, ARM_JOINTS]).mean())
            ee_rewards.append(plan.end_effector_max_reward)
            if demo.success:
                succeeded.append(seed)
                first_success_steps.append(demo.first_success_step)
            else:
                failed.append(seed)
            if write_bags:
                write_demonstration_bag(demo, Path(tmp) / bag_name(task, seed))
                write_s += time.perf_counter() - t2
            if progress:
                print(f"  {task} seed {seed}: success={demo.success} "
                      f"({i + 1}/{len(seeds)}, {len(succeeded)} ok)", flush=True)
    total = time.perf_counter() - start
    sim.close()
    return {
        "task": task,
        "episodes": len(seeds),
        "succeeded": len(succeeded),
        "success_rate": len(succeeded) / len(seeds),
        "failed_seeds": failed,
        "end_effector_success_rate": sum(r >= 4 for r in ee_rewards) / len(seeds),
        "tracking_corrections": tracking_corrections,
        "replay_tracking_error_rad": float(np.mean(tracking)),
        "first_success_step_min": min(first_success_steps, default=None),
        "first_success_step_max": max(first_success_steps, default=None),
        "plan_s_per_episode": plan_s / len(seeds),
        "replay_s_per_episode": replay_s / len(seeds),
        "replay_steps_per_s": steps / replay_s if replay_s > 0 else None,
        "bag_write_s_per_episode": write_s / len(seeds) if write_bags else None,
        "total_minutes": total / 60.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=TRAIN_SEED_START)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--no-bags", action="store_true", help="skip writing the rosbag2s")
    parser.add_argument("--tracking-corrections", type=int, default=1,
                        help="headless correction replays per demo (0: plain ACT recipe)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", default="outputs/bench_scripted_expert.json")
    args = parser.parse_args()
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    results = {
        "machine": {"python": platform.python_version(), "processor": platform.processor(),
                    "node": platform.node()},
        "image_size": args.image_size,
        "seeds": [seeds[0], seeds[-1]],
        "tasks": [bench_task(t, seeds, args.image_size, not args.no_bags, not args.quiet,
                             args.tracking_corrections) for t in args.tasks],
    }
    print(f"{'task':<14}{'success':>10}{'plan s/ep':>11}{'replay s/ep':>13}{'steps/s':>9}"
          f"{'bag s/ep':>10}{'minutes':>9}{'track mrad':>12}")
    for r in results["tasks"]:
        bag = f"{r['bag_write_s_per_episode']:.2f}" if r["bag_write_s_per_episode"] else "-"
        print(f"{r['task']:<14}{r['succeeded']:>5}/{r['episodes']:<4}"
              f"{r['plan_s_per_episode']:>11.2f}{r['replay_s_per_episode']:>13.2f}"
              f"{r['replay_steps_per_s']:>9.0f}{bag:>10}{r['total_minutes']:>9.2f}"
              f"{r['replay_tracking_error_rad'] * 1e3:>12.2f}")
        if r["failed_seeds"]:
            print(f"  failed seeds: {r['failed_seeds']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
