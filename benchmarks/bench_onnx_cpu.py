# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""CPU latency of the compact policy's 1-NFE chunk: PyTorch, ONNX Runtime and OpenVINO.

The demo configuration (one 128x128 camera, 14 joints, chunk 50, the demo's CompactPolicyConfig)
with random weights, or ``--checkpoint``. The checkpoint is exported with ``snapflow export
onnx``'s code (dynamic int8 included), then each backend's runner -- what the policy node calls --
runs ``infer(observation, num_steps=1)`` on one thread: :class:`PolicyRunner` (torch) and
:class:`OnnxPolicyRunner` (float32, int8) and, where OpenVINO is installed,
:class:`OpenVinoPolicyRunner` (float32, int8, and bfloat16 where the CPU has it; a precision it
cannot run is reported, not timed). The runners take turns in short blocks, so a change in
machine load hits them all alike. Prints median / p95 ms of ``infer`` and of its ``model``
stage, the ratios to torch and the round-trip errors of the export; ``--json`` writes them.
With ``--heldout-bags`` (a trained ``--checkpoint``), also the held-out action MSE of each backend
on the validation frames ``snapflow eval`` scores.

Example::

    python benchmarks/bench_onnx_cpu.py --json onnx_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.export.onnx_export import OnnxExportConfig, export_onnx
from snapflow_ros.export.onnx_runner import OnnxPolicyRunner
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import save_checkpoint
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.runtime.observation_buffer import Observation
from snapflow_ros.runtime.policy_runner import PolicyRunner

DEMO_POLICY = CompactPolicyConfig(chunk_size=50, cnn_channels=(16, 32, 64), cnn_stem_stride=4,
                                  hidden_dim=128, num_layers=4)
"""The compact policy of ``config/sim_demo.yaml``."""
DEMO_ROBOT = RobotInterface(
    joint_names=tuple(f"{side}_{joint}" for side in ("left", "right") for joint in
                      ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                       "wrist_rotate", "gripper")),
    camera_keys=("top",), image_height=128, image_width=128)


def random_demo_checkpoint(run_dir: Path) -> Path:
    """The demo policy with random weights (adaLN-zero opened, so every layer computes)."""
    torch.manual_seed(0)
    policy = CompactFlowPolicy(DEMO_POLICY, DEMO_ROBOT)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return save_checkpoint(policy, run_dir, stage="snapflow", step=0, command="bench_onnx_cpu")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def observation_for(robot) -> Observation:
    """A camera frame of the model's size and a state vector, as the node hands them over."""
    rng = np.random.default_rng(1)
    images = {key: rng.integers(0, 256, (robot.image_height, robot.image_width, 3),
                                dtype=np.uint8) for key in robot.camera_keys}
    joints = len(robot.joint_names)
    return Observation(images=images, state=rng.normal(0, 0.3, joints),
                       measured_position=np.zeros(len(robot.action_names)), task="",
                       time=0.0, stamps={}, ages={},
                       environment_state=np.zeros(len(robot.environment_state_names)))


def heldout_mse(checkpoint: str, folder: Path, bags: list[str], cache_dir: str | None,
                samples: int, seed: int = 0) -> dict[str, float]:
    """Action MSE (robot units^2) of torch, ORT float32 and ORT int8 on held-out frames.

    The validation episodes and frames ``snapflow eval`` scores (split from the run's
    ``train_job.yaml``), one 1-NFE chunk per frame from the same noise for all three.
    """
    from snapflow_ros.cli.eval import training_job_file
    from snapflow_ros.config_fields import config_from_dict
    from snapflow_ros.config_loading import read_yaml_mapping
    from snapflow_ros.data.config import BagTopicsConfig
    from snapflow_ros.data.episodes import load_episodes
    from snapflow_ros.evaluation.offline import (
        OfflineEvalConfig,
        select_episodes,
        subsample_frames,
    )
    from snapflow_ros.export.manifest import image_input_name, read_manifest
    from snapflow_ros.export.onnx_runner import OnnxGraphs
    from snapflow_ros.policies.checkpoint import load_policy, resolve_checkpoint
    from snapflow_ros.snapflow.sampler import predict_action_chunk

    directory = resolve_checkpoint(checkpoint)
    job_file = training_job_file(directory)
    if job_file is None:
        raise SystemExit(f"{directory}: no train_job.yaml beside it, so no held-out split")
    job = read_yaml_mapping(job_file)
    policy = load_policy(directory)
    robot = policy.robot
    data = dict(job.get("data") or {}, image_height=robot.image_height,
                image_width=robot.image_width)
    data["joint_names"] = data.get("joint_names") or list(robot.joint_names)
    episodes, _ = load_episodes(bags or job["bags"], config_from_dict(BagTopicsConfig, data),
                                progress=False, cache_dir=cache_dir)
    train = job.get("train") or {}
    config = OfflineEvalConfig(samples=samples, seed=seed,
                               split_seed=int(train.get("seed", seed)),
                               val_fraction=float(train.get("val_fraction", 0.1)))
    scored, _ = select_episodes(episodes, config)
    chosen = [episodes[i] for i in scored]
    frames = subsample_frames([len(e) for e in chosen], samples, seed)
    horizon = policy.chunk_size
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((len(frames), horizon, policy.action_dim), dtype=np.float32)
    manifest = read_manifest(folder)
    graphs = {p: OnnxGraphs(folder, manifest, precision=p, intra_op_threads=0)
              for p in ("float32", "int8")}
    errors: dict[str, list[np.ndarray]] = {"torch": [], "ort_float32": [], "ort_int8": []}
    for row, (episode_index, frame) in enumerate(frames):
        episode = chosen[episode_index]
        steps = np.arange(frame, frame + horizon)
        valid = steps < len(episode)
        recorded = episode.action[np.minimum(steps, len(episode) - 1)].astype(np.float64)
        feeds = {image_input_name(key): np.ascontiguousarray(
            episode.images[key][frame].transpose(2, 0, 1)[None]) for key in robot.camera_keys}
        feeds["state"] = np.asarray(episode.state[frame], np.float32)[None]
        if robot.environment_state_names:
            feeds["environment_state"] = np.asarray(episode.environment_state[frame],
                                                    np.float32)[None]
        batch = {"images": {key: torch.from_numpy(feeds[image_input_name(key)])
                            for key in robot.camera_keys},
                 "state": torch.from_numpy(feeds["state"])}
        if "environment_state" in feeds:
            batch["environment_state"] = torch.from_numpy(feeds["environment_state"])
        chunk_noise = noise[row:row + 1]
        predictions = {
            "torch": predict_action_chunk(policy, batch, noise=torch.from_numpy(chunk_noise))[0]
            .numpy(),
            "ort_float32": graphs["float32"].predict(feeds, chunk_noise)[0],
            "ort_int8": graphs["int8"].predict(feeds, chunk_noise)[0]}
        for name, predicted in predictions.items():
            errors[name].append(((predicted - recorded) ** 2)[valid])
    return {name: float(np.concatenate(values).mean()) for name, values in errors.items()}


def openvino_runners(runners: dict, folder: Path, threads: int) -> dict[str, str]:
    """Add ``ov_<precision>`` runners to ``runners``; returns ``{name: why not}`` for the rest."""
    try:
        from snapflow_ros.export.openvino_runner import (
            OPENVINO_PRECISIONS,
            OpenVinoPolicyRunner,
            import_openvino,
        )

        import_openvino()
    except ConfigError as exc:
        return {"openvino": str(exc)}
    not_run = {}
    for precision in OPENVINO_PRECISIONS:
        try:
            runners[f"ov_{precision}"] = OpenVinoPolicyRunner(folder, threads=threads, seed=0,
                                                              precision=precision)
        except ConfigError as exc:  # e.g. bfloat16 on a CPU without AVX512-BF16 / AMX
            not_run[f"ov_{precision}"] = str(exc)
    return not_run


def _openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__


def summary(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples)
    return {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95)),
            "n": int(values.size)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="", help="checkpoint or run directory "
                        "(default: the demo configuration with random weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per backend")
    parser.add_argument("--block", type=int, default=10, help="calls per turn of a backend")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--heldout-bags", nargs="+", default=None, metavar="PATH",
                        help="with --checkpoint: also score held-out frames of these bags "
                             "(the run's validation split) with each backend")
    parser.add_argument("--cache-dir", default=None, help="episode cache of the bags")
    parser.add_argument("--heldout-samples", type=int, default=200)
    parser.add_argument("--label", default="", help="what the checkpoint is, for the report "
                        "(default: its path)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="bench_onnx_cpu_"))
    checkpoint = args.checkpoint or str(random_demo_checkpoint(workdir / "run"))
    started = time.perf_counter()
    manifest = export_onnx(checkpoint, workdir / "onnx", OnnxExportConfig(quantize="dynamic"),
                           log=lambda line: None)
    export_s = time.perf_counter() - started
    torch.set_num_threads(args.threads)
    runners = {
        "torch": PolicyRunner(checkpoint, device="cpu", seed=0, num_threads=args.threads),
        "ort_float32": OnnxPolicyRunner(workdir / "onnx", intra_op_threads=args.threads, seed=0),
        "ort_int8": OnnxPolicyRunner(workdir / "onnx", intra_op_threads=args.threads, seed=0,
                                     precision="int8"),
    }
    not_run = openvino_runners(runners, workdir / "onnx", args.threads)
    observation = observation_for(runners["torch"].robot)
    for runner in runners.values():
        runner.warmup(iterations=args.warmup)
    infer_ms: dict[str, list[float]] = {name: [] for name in runners}
    model_ms: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(max(1, args.repeats // args.block)):
        for name, runner in runners.items():
            for _ in range(args.block):
                start = time.perf_counter()
                result = runner.infer(observation, 1, "jump")
                infer_ms[name].append((time.perf_counter() - start) * 1e3)
                model_ms[name].append(result.timings_ms["model"])
    results = {name: {"infer": summary(infer_ms[name]), "model": summary(model_ms[name])}
               for name in runners}
    base = results["torch"]["infer"]["median_ms"]
    for entry in results.values():
        entry["infer_vs_torch"] = entry["infer"]["median_ms"] / base
    report = {
        "benchmark": "onnx_cpu",
        "checkpoint": args.label or args.checkpoint or "demo config, random weights",
        "cpu": cpu_name(), "cpus": os.cpu_count(), "threads": args.threads,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "versions": manifest["versions"], "export_s": export_s,
        "round_trip": {precision: {k: manifest["round_trip"][precision][k]
                                   for k in ("max_abs_error", "max_error_of_range")}
                       for precision in ("float32", "int8")},
        "results": results, "not_run": not_run,
        "openvino": _openvino_version(),
    }
    print(f"compact, chunk {manifest['chunk_size']}, {DEMO_ROBOT.image_height} px, 1 NFE, "
          f"{args.threads} thread(s), {report['cpu']} ({report['cpus']} CPUs, load "
          f"{report['load_average']})")
    print("| backend | infer median ms | infer p95 ms | model stage median ms | vs torch |")
    print("|---|---|---|---|---|")
    for name, entry in results.items():
        print(f"| {name} | {entry['infer']['median_ms']:.2f} | {entry['infer']['p95_ms']:.2f} | "
              f"{entry['model']['median_ms']:.2f} | {entry['infer_vs_torch']:.2f}x |")
    for name, why in not_run.items():
        print(f"{name}: not run ({why})")
    for precision, errors in report["round_trip"].items():
        print(f"round trip {precision}: max |ORT - torch| {errors['max_abs_error']:.3g}, "
              f"{errors['max_error_of_range']:.3g} of the action range")
    if args.heldout_bags:
        if not args.checkpoint:
            raise SystemExit("--heldout-bags needs --checkpoint (a trained run)")
        mse = heldout_mse(args.checkpoint, workdir / "onnx", args.heldout_bags, args.cache_dir,
                          args.heldout_samples)
        report["heldout_mse"] = mse
        print("held-out action MSE (1 NFE, " + f"{args.heldout_samples} frames): " + ", ".join(
            f"{name} {value:.5f} ({value / mse['torch'] - 1:+.1%})" for name, value in
            mse.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for runner in runners.values():
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
