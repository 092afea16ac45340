#!/usr/bin/env python3
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Blind baselines for a demo run's offline action MSE: does a policy use what it sees.

Two predictors that never look at an observation, scored like ``snapflow eval`` scores a chunk
(mean squared error over the chunk's steps and joints, robot units):

- *time-indexed mean*: the chunk at control step ``t`` is the mean over the training episodes of
  their actions at ``t .. t+H-1`` (the average demonstration, played from the same step);
- *hold*: the chunk repeats the action recorded at ``t`` (what a policy that only copies the last
  command would do).

A policy whose MSE is well below the time-indexed mean uses its observation; one near it has
learnt the average motion only.

    .venv/bin/python scripts/mean_trajectory_baseline.py --train outputs/sim_demo_full/demos \
        --heldout outputs/sim_demo_full/heldout_demos [--chunk 50] [--stride 5]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from snapflow_ros.data.bag_reader import find_bags, read_bag
from snapflow_ros.data.config import BagTopicsConfig

# The defaults read the simulator's recordings; images are decoded small since they are unused.
TOPICS = BagTopicsConfig(image_height=16, image_width=16)


def episode_actions(folder: str) -> list[np.ndarray]:
    """The action stream ``(T, A)`` of every bag under ``folder``."""
    actions = []
    for bag in find_bags(folder):
        streams = read_bag(bag, TOPICS)
        actions.append(np.asarray(streams.action.values, dtype=np.float64))
    if not actions:
        raise SystemExit(f"error: no bags under {folder}")
    return actions


def chunk_mse(predicted: np.ndarray, recorded: np.ndarray) -> float:
    """Mean squared error over a chunk's steps and joints."""
    return float(((predicted - recorded) ** 2).mean())


def main(argv: list[str] | None = None) -> int:
    """Print the two baselines' MSE statistics (as JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="folder of the training bags")
    parser.add_argument("--heldout", required=True, help="folder of the held-out bags")
    parser.add_argument("--chunk", type=int, default=50, help="chunk length H (default 50)")
    parser.add_argument("--stride", type=int, default=5, help="score every N-th step")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    train = episode_actions(args.train)
    length = min(len(a) for a in train)
    mean = np.stack([a[:length] for a in train]).mean(axis=0)
    scores = {"time_indexed_mean": [], "hold": []}
    for actions in episode_actions(args.heldout):
        last = min(len(actions), length) - args.chunk
        for t in range(0, last + 1, args.stride):
            recorded = actions[t:t + args.chunk]
            scores["time_indexed_mean"].append(chunk_mse(mean[t:t + args.chunk], recorded))
            scores["hold"].append(chunk_mse(np.broadcast_to(actions[t], recorded.shape),
                                            recorded))
    summary = {name: {"mse_mean": float(np.mean(v)), "mse_median": float(np.median(v)),
                      "mse_p95": float(np.percentile(v, 95)), "n": len(v)}
               for name, v in scores.items()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for name, stats in summary.items():
            print(f"{name:18s} MSE mean {stats['mse_mean']:.5f}  median {stats['mse_median']:.5f}"
                  f"  P95 {stats['mse_p95']:.5f}  (N={stats['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
