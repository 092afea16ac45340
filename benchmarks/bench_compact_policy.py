# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the compact policy in its demo configuration: size, training speed, latency.

Demo configuration: one 128x128 camera ``top``, 14 joints (two 7-DoF ALOHA arms), chunk H = 50,
the default :class:`CompactPolicyConfig`. Reports the parameter count, training steps/s of both
stages at the default batch size (through :func:`run_training`, data loading included) and the
batch-1 inference latency for 1, 2, 4 and 10 denoising steps, with the prefix (observation
encoding) and the denoising loop timed separately, after warm-up.

Example::

    python benchmarks/bench_compact_policy.py --json compact_bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import Dataset

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.snapflow.sampler import predict_action_chunk, sample_chunk
from snapflow_ros.training.config import TrainConfig, training_defaults
from snapflow_ros.training.trainer import run_training

DEMO_ROBOT = RobotInterface(
    joint_names=tuple(f"{side}_{joint}" for side in ("left", "right") for joint in
                      ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                       "wrist_rotate", "gripper")),
    camera_keys=("top",), image_height=128, image_width=128)


class SyntheticDemoDataset(Dataset):
    """Random samples in the demo layout (uint8 image, 14-D state, 50 x 14 chunk)."""

    def __init__(self, size: int, chunk: int) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (size, 3, 128, 128), dtype=np.uint8)
        self.states = rng.normal(size=(size, 14)).astype(np.float32)
        self.actions = rng.normal(size=(size, chunk, 14)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, index: int) -> dict:
        return {"images": {"top": torch.from_numpy(self.images[index])},
                "state": torch.from_numpy(self.states[index]),
                "action": torch.from_numpy(self.actions[index]),
                "action_is_pad": torch.zeros(self.actions.shape[1], dtype=torch.bool)}


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": 1e3 * statistics.median(ordered),
            "p95_ms": 1e3 * ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))],
            "mean_ms": 1e3 * statistics.fmean(ordered)}


def time_call(function, *, warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(iterations):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def count_parameters(policy: CompactFlowPolicy) -> dict[str, int]:
    total = sum(p.numel() for p in policy.parameters())
    prefix = sum(p.numel() for p in policy.prefix_parameters())
    phi_s = sum(p.numel() for p in policy.target_time_embedding.parameters())
    return {"total": total, "prefix_encoder": prefix, "expert": total - prefix - phi_s,
            "phi_s": phi_s}


def training_speed(stage: str, batch_size: int, steps: int, warmup: int,
                   device: str) -> dict[str, float]:
    dataset = SyntheticDemoDataset(max(4 * batch_size, 64), CompactPolicyConfig().chunk_size)
    torch.manual_seed(0)
    policy = CompactFlowPolicy(CompactPolicyConfig(), DEMO_ROBOT)
    config = TrainConfig(stage=stage, steps=warmup + steps, batch_size=batch_size,
                         val_every=0, checkpoint_every=0, log_every=10_000, device=device)
    stamps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as run_dir:
        run_training(policy, dataset, None, config, run_dir, progress=False,
                     on_progress=lambda info: stamps.__setitem__(info["step"],
                                                                 time.perf_counter()))
    elapsed = stamps[warmup + steps] - stamps[warmup]
    return {"steps_per_s": steps / elapsed, "samples_per_s": steps * batch_size / elapsed,
            "batch_size": batch_size, "timed_steps": steps}


def inference_latency(step_counts: list[int], warmup: int, iterations: int,
                      device: str) -> dict[str, dict]:
    torch.manual_seed(0)
    stats = NormalizationStats.identity(14, 14)
    policy = CompactFlowPolicy(CompactPolicyConfig(), DEMO_ROBOT, stats).to(device).eval()
    batch = {"images": {"top": torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)},
             "state": torch.randn(1, 14)}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def encode():
        with torch.inference_mode():
            policy.encode(batch)
        sync()

    with torch.inference_mode():
        context = policy.encode(batch)
    results = {"prefix_encode": percentiles_ms(time_call(encode, warmup=warmup,
                                                         iterations=iterations))}
    for steps in step_counts:
        def denoise(steps=steps):
            sample_chunk(policy, context, num_steps=steps, mode="jump")
            sync()

        def end_to_end(steps=steps):
            predict_action_chunk(policy, batch, num_steps=steps, mode="jump")
            sync()

        results[f"denoise_{steps}"] = percentiles_ms(
            time_call(denoise, warmup=warmup, iterations=iterations))
        results[f"total_{steps}"] = percentiles_ms(
            time_call(end_to_end, warmup=warmup, iterations=iterations))
        print(f"{steps:>2} steps: encode p50 {results['prefix_encode']['p50_ms']:.2f} ms, "
              f"denoise p50 {results[f'denoise_{steps}']['p50_ms']:.2f} ms, "
              f"total p50 {results[f'total_{steps}']['p50_ms']:.2f} ms", flush=True)
    first, last = step_counts[0], step_counts[-1]
    results["speedup"] = {
        f"denoise_{last}_over_{first}": results[f"denoise_{last}"]["p50_ms"]
        / results[f"denoise_{first}"]["p50_ms"],
        f"total_{last}_over_{first}": results[f"total_{last}"]["p50_ms"]
        / results[f"total_{first}"]["p50_ms"],
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int,
                        default=training_defaults("compact").batch_size,
                        help="training batch size (default: the compact policy's)")
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--train-warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--iterations", type=int, default=100, help="timed inference calls")
    parser.add_argument("--warmup", type=int, default=20, help="untimed inference calls")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 10],
                        help="denoising step counts to time")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-training", action="store_true", help="latency only")
    parser.add_argument("--json", dest="json_path", default=None, help="write results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report = {
        "configuration": {"camera": "top 128x128", "joints": 14, "chunk_size": 50,
                          "policy_config": CompactPolicyConfig().__dict__},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": args.device},
        "parameters": count_parameters(CompactFlowPolicy(CompactPolicyConfig(), DEMO_ROBOT)),
        "inference_batch1": inference_latency(sorted(args.steps), args.warmup, args.iterations,
                                              args.device),
    }
    if not args.skip_training:
        report["training"] = {
            stage: training_speed(stage, args.batch_size, args.train_steps, args.train_warmup,
                                  args.device) for stage in ("teacher", "snapflow")}

    print(f"parameters: {report['parameters']}")
    for name, value in report["inference_batch1"].items():
        if name == "speedup":
            print("speedup (p50):", ", ".join(f"{k} {v:.2f}x" for k, v in value.items()))
        else:
            print(f"{name:>14}: p50 {value['p50_ms']:7.2f} ms  p95 {value['p95_ms']:7.2f} ms")
    for stage, speed in report.get("training", {}).items():
        print(f"train {stage:>8}: {speed['steps_per_s']:.2f} steps/s "
              f"({speed['samples_per_s']:.0f} samples/s at batch {speed['batch_size']})")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, default=list)
        print(f"wrote {args.json_path}")


if __name__ == "__main__":
    main()
