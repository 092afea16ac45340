# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-stage inference latency of the LeRobot VLA backends (SmolVLA, PI0, PI05) with SnapFlow.

Random-initialised models, built offline: ``--size real`` uses the real dimensions (SmolVLA
~450M on a SmolVLM2-500M config written locally; PI0 / PI05 ~3.5B / 4.1B with LeRobot's own
Gemma 2B + 300M), ``--size tiny`` the test backbones. Latency does not depend on the weights.
The prompt is tokenised by a tokenizer trained in-process, so token ids (not sequence lengths:
PI0 / PI05 pad to a fixed length) differ from the real tokenizer's.

Stages, batch 1, one camera (``--cameras``), median over ``--repeats`` after ``--warmup``:

- ``preprocess``: LeRobot's preprocessor (normalise, tokenise) + transfer to the device;
- ``prefix``: the VLM over images, prompt (and state) once, kept as a KV cache;
- ``expert``: one action-expert call ``F(x, s, t)`` on that cache (one NFE);
- ``postprocess``: LeRobot's unnormaliser (+ transfer back to the CPU);
- ``e2e_<N>``: raw observation -> robot actions with our sampler, N = 1 (SnapFlow 1-NFE jump)
  and N = 10 (the teacher's Euler steps); ``lerobot_e2e_<N>``: the same through LeRobot's own
  ``predict_action_chunk`` (stock pipeline, for reference).

CUDA timings are synchronised before and after each timed call.

Usage: ``python benchmarks/bench_lerobot_latency.py --policy smolvla --size real
[--device cuda --dtype bfloat16] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.lerobot_vla.offline_backbones import (
    SMOLVLM2_500M_DIMS,
    TINY_PALIGEMMA_DIMS,
    train_tokenizer,
    write_smolvlm_backbone,
)
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.policies.registry import new_policy
from snapflow_ros.snapflow.sampler import predict_action_chunk

PROMPT = "pick up the red cube and put it in the bowl on the left"


def build(policy: str, size: str, device: str, dtype: str, workdir: Path, *, joints: int,
          cameras: int, image_hw: tuple[int, int], image_size: int, chunk_size: int):
    """A random-initialised policy (built directly on ``device``) and its robot interface."""
    robot = RobotInterface(joint_names=tuple(f"joint_{i}" for i in range(joints)),
                           camera_keys=tuple(f"cam_{i}" for i in range(cameras)),
                           image_height=image_hw[0], image_width=image_hw[1])
    overrides: dict = {}
    if policy == "smolvla":
        dims = SMOLVLM2_500M_DIMS if size == "real" else None
        options = dict(vlm_model_name=str(write_smolvlm_backbone(workdir / "smolvlm", dims)))
    else:
        options = dict(tokenizer_path=str(train_tokenizer(workdir / "tokenizer")))
    if size == "tiny":
        overrides.update(max_state_dim=max(8, joints), max_action_dim=max(8, joints))
        if policy == "smolvla":
            options["image_size"] = image_size or 64
        else:
            overrides.update(backbone_dims=TINY_PALIGEMMA_DIMS, tokenizer_max_length=24)
            options["image_size"] = image_size or 32
    elif image_size:
        options["image_size"] = image_size
    options.update(device=device, dtype=dtype, chunk_size=chunk_size, lerobot_overrides=overrides)
    stats = NormalizationStats.identity(joints, joints)
    # Parameters are created on the device directly: a 4B model initialises in seconds there.
    with torch.device(device):
        model = new_policy(policy, options, robot, stats)
    return model.to(device).eval(), robot


def observation(robot: RobotInterface) -> dict:
    """One raw observation: uint8 camera images, joint state (radians) and the task text."""
    return {
        "images": {key: torch.randint(0, 256, (1, 3, robot.image_height, robot.image_width),
                                      dtype=torch.uint8) for key in robot.camera_keys},
        "state": torch.randn(1, len(robot.joint_names)) * 0.3,
        "task": [PROMPT],
    }


def timed(fn: Callable[[], object], device: torch.device, repeats: int,
          warmup: int) -> dict[str, float]:
    """Median / p90 / mean / min of ``fn`` in milliseconds (CUDA-synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    ordered = sorted(samples)
    return {"median_ms": statistics.median(samples),
            "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "mean_ms": statistics.fmean(samples), "min_ms": ordered[0], "n": len(samples)}


def run(args: argparse.Namespace) -> dict:
    """Build the model and time every stage; returns the result mapping."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="bench_lerobot_"))
    start = time.perf_counter()
    policy, robot = build(args.policy, args.size, args.device, args.dtype, workdir,
                          joints=args.joints, cameras=args.cameras,
                          image_hw=(args.image_height, args.image_width),
                          image_size=args.image_size, chunk_size=args.chunk_size)
    build_s = time.perf_counter() - start
    lerobot_policy = policy.lerobot_policy
    params = sum(p.numel() for p in policy.parameters())
    expert_params = sum(p.numel() for p in policy.trainable_parameters("snapflow"))
    raw = observation(robot)

    def fresh() -> dict:
        return dict(raw)  # a new dict object: the preprocessing memo must not hit

    results: dict[str, dict] = {}
    inference = torch.inference_mode()
    with inference:
        processed = policy.preprocess(fresh())
        context = policy.encode_preprocessed(processed)
        x = torch.randn(1, policy.chunk_size, policy.action_dim, device=device)
        ones = torch.ones(1, device=device)
        zeros = torch.zeros(1, device=device)
        repeats, warmup = args.repeats, args.warmup
        results["preprocess"] = timed(lambda: policy.preprocess(fresh()), device, repeats, warmup)
        results["prefix"] = timed(lambda: policy.encode_preprocessed(processed), device,
                                  repeats, warmup)
        results["expert"] = timed(lambda: policy.velocity(x, zeros, ones, context), device,
                                  repeats, warmup)
        results["postprocess"] = timed(lambda: policy.to_robot_actions(x), device, repeats,
                                       warmup)
        for steps in args.steps:
            mode = "jump" if steps == 1 else "euler"
            results[f"e2e_{steps}"] = timed(
                lambda steps=steps, mode=mode: predict_action_chunk(
                    policy, fresh(), num_steps=steps, mode=mode),
                device, repeats, warmup)

        def lerobot_e2e() -> torch.Tensor:
            batch = {"observation.state": raw["state"], "task": list(raw["task"])}
            for key, image in raw["images"].items():
                batch[f"observation.images.{key}"] = image.float() / 255.0
            return policy.postprocessor(
                lerobot_policy.predict_action_chunk(policy.preprocessor(batch)))

        for steps in args.steps:
            policy.set_lerobot_num_steps(steps)
            results[f"lerobot_e2e_{steps}"] = timed(lerobot_e2e, device, repeats, warmup)
    report = {
        "policy": args.policy, "size": args.size, "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "dtype": args.dtype, "threads": torch.get_num_threads(), "batch": 1,
        "cameras": args.cameras, "joints": args.joints, "chunk_size": policy.chunk_size,
        "action_dim": policy.action_dim, "prefix_tokens": int(context["prefix_pad_masks"].shape[1]),
        "parameters": params, "trainable_snapflow_parameters": expert_params,
        "build_s": build_s, "torch": torch.__version__, "stages": results,
    }
    if device.type == "cuda":
        report["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return report


def print_report(report: dict) -> None:
    """A short human-readable table of the stage medians."""
    print(f"{report['policy']} ({report['size']}, {report['parameters'] / 1e6:.1f}M params, "
          f"{report['dtype']}) on {report['device']} [{report['device_name']}], "
          f"{report['prefix_tokens']} prefix tokens, built in {report['build_s']:.1f} s")
    for stage, numbers in report["stages"].items():
        print(f"  {stage:16s} median {numbers['median_ms']:9.2f} ms   p90 "
              f"{numbers['p90_ms']:9.2f} ms   (n={numbers['n']})")


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run, print and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=("smolvla", "pi0", "pi05"), default="smolvla")
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--joints", type=int, default=14)
    parser.add_argument("--image-height", type=int, default=480)
    parser.add_argument("--image-width", type=int, default=640)
    parser.add_argument("--image-size", type=int, default=0,
                        help="square side fed to the vision encoder (0: the model's)")
    parser.add_argument("--chunk-size", type=int, default=0, help="0: the model's (50)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args)
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
