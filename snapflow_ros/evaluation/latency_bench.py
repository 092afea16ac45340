# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench latency``: where the time of one chunk goes, and how far it is from the limit.

For a checkpoint, or a named architecture with random weights (``compact`` in its demo
configuration; ``smolvla``, ``pi0``, ``pi05`` at their real dimensions, or tiny ones for tests),
every stage of one inference is timed at batch 1, after warm-up, CUDA-synchronised on a GPU:

- ``decode``: the camera message payload -> RGB array (raw rgb8 copy, or JPEG decode);
- ``resize``: to the model's input size (free when the camera already has it);
- ``preprocess``: arrays -> tensors on the device, normalisation and (VLAs) tokenisation;
- ``prefix``: the observation encoder / VLM, once per chunk;
- ``expert``: each action-expert call ``F(x, s, t)`` (reported per call) with its Euler update;
- ``postprocess``: back to robot units, on the host as float64;
- ``publish``: a ``trajectory_msgs/JointTrajectory`` built as the policy node builds it and
  published (only where rclpy is installed; otherwise ``n/a`` and not part of ``e2e``).

``e2e`` is the same sequence run back to back without the per-stage barriers (what the node's
inference thread does); ``decode`` and ``resize`` count in it only with ``frame_prep=inference``
(the policy node decodes on arrival). The limit is ``prefix + one expert call`` (of the 1-step
run) and ``ratio_to_limit = e2e p50 / limit``. Variants (``--variant``) rerun the same workload
with other speed options on the same model; ``path=sampler`` is the plain sampler and
``path=naive`` a reference without the basics (autograd on, prefix recomputed for every expert
call), so the effect of each option is measured, not assumed.

Output: a markdown table on stdout (and ``--markdown FILE``), JSON with ``--json FILE``:
``results["<steps>"]`` holds ``e2e_ms_p50``, ``e2e_ms_p95``, ``prefix_ms_p50``,
``expert_ms_p50`` (per call), ``limit_ms`` and ``ratio_to_limit`` of the first variant;
``variants[name]`` the same for each variant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, config_to_dict, param

NAMED_POLICIES = ("compact", "smolvla", "pi0", "pi05")
SIZES = ("real", "tiny")
PATHS = ("fast", "sampler", "naive")
FRAME_PREPS = ("inference", "arrival")
TRANSPORTS = ("raw", "compressed")
STAGES = ("decode", "resize", "preprocess", "prefix", "expert", "postprocess", "publish")
PROMPT = "pick up the red cube and put it in the bowl on the left"
EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


@dataclasses.dataclass(frozen=True)
class LatencyBenchConfig:
    """The workload: which model, on what, with which inputs, how many samples."""

    policy: str = param("compact", "Named architecture with random weights (used when no "
                        "checkpoint is given).", choices=NAMED_POLICIES)
    checkpoint: str = param("", "Checkpoint or run directory to benchmark instead.")
    size: str = param("real", "VLA dimensions: real (latency figures) or tiny (tests).",
                      choices=SIZES)
    device: str = param("auto", "auto, cpu or cuda.", choices=("auto", "cpu", "cuda"))
    weights_dtype: str = param("float32", "VLAs: dtype the model is built in (PI0 / PI05 keep "
                               "their vision tower in float32).", choices=("float32", "bfloat16"))
    steps: tuple[int, ...] = param((1, 2, 4, 10), "Sampler step counts.", low=1, high=1000)
    mode: str = param("jump", "k-step sampler: jump or euler.", choices=("jump", "euler"))
    repeats: int = param(50, "Timed runs per stage and step count.", low=1, high=100000)
    warmup: int = param(5, "Untimed runs first (compile / capture happen here).", low=1,
                        high=1000)
    camera_height: int = param(0, "Camera frame height (0: the model's input).", low=0,
                               high=8192)
    camera_width: int = param(0, "Camera frame width (0: the model's input).", low=0, high=8192)
    transport: str = param("raw", "Camera message: raw rgb8 or compressed (JPEG).",
                           choices=TRANSPORTS)
    frame_prep: str = param("arrival", "Where decode and resize run: arrival (subscription "
                            "callback, off the inference path) or inference (counted in e2e).",
                            choices=FRAME_PREPS)
    threads: int = param(0, "torch CPU threads (0: torch's default).", low=0, high=1024)
    publish: bool = param(True, "Time the ROS publish stage where rclpy is available.")
    joints: int = param(14, "Joints of the named architectures' robot.", low=1, high=64)
    seed: int = param(0, "Seed of weights, inputs and noise.", low=0)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.steps:
            raise ConfigError("steps: give at least one step count")
        if (self.camera_height == 0) != (self.camera_width == 0):
            raise ConfigError("camera_height and camera_width: set both or neither")


@dataclasses.dataclass(frozen=True)
class BenchVariant:
    """One set of speed options: path, FastInference options, threads, frame prep, step counts.

    ``None`` fields take the benchmark's own setting.
    """

    name: str
    path: str = "fast"
    options: dict = dataclasses.field(default_factory=dict)
    threads: int | None = None
    frame_prep: str | None = None
    steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and (not self.steps or min(self.steps) < 1):
            raise ConfigError(f"variant {self.name}: steps must be integers >= 1")
        if self.path not in PATHS:
            raise ConfigError(f"variant {self.name}: path must be one of {', '.join(PATHS)}")
        if self.frame_prep is not None and self.frame_prep not in FRAME_PREPS:
            raise ConfigError(f"variant {self.name}: frame_prep must be one of "
                              f"{', '.join(FRAME_PREPS)}")
        self.fast_config()  # validates the options

    def fast_config(self) -> Any:
        """The :class:`~snapflow_ros.runtime.fast_inference.FastInferenceConfig` of the options."""
        from snapflow_ros.config_fields import config_from_dict
        from snapflow_ros.runtime.fast_inference import FastInferenceConfig

        return config_from_dict(FastInferenceConfig, self.options, where=f"{self.name}.")


def parse_variant(text: str) -> BenchVariant:
    """``NAME[:key=value,...]`` -> :class:`BenchVariant`.

    Keys: ``path`` (fast / sampler / naive), ``threads``, ``frame_prep``, ``steps`` (step
    counts joined by ``+``) and any field of
    :class:`~snapflow_ros.runtime.fast_inference.FastInferenceConfig`, e.g.
    ``graph_bf16:accelerate=cuda_graph,dtype=bfloat16,steps=1+10``.
    """
    name, _, spec = text.partition(":")
    if not name.strip():
        raise ConfigError(f"variant {text!r}: needs a name, e.g. graph:accelerate=cuda_graph")
    fields: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"variant {text!r}: expected key=value, got {item!r}")
        fields[key.strip()] = value.strip()
    path = fields.pop("path", "fast")
    threads = fields.pop("threads", None)
    frame_prep = fields.pop("frame_prep", None)
    steps_text = fields.pop("steps", None)
    options: dict[str, Any] = {}
    for key, value in fields.items():
        options[key] = int(value) if value.isdigit() else value
    try:
        threads_value = int(threads) if threads is not None else None
        steps = tuple(int(v) for v in steps_text.split("+")) if steps_text is not None else None
    except ValueError:
        raise ConfigError(f"variant {text!r}: threads and steps (like 1+10) must be "
                          "integers") from None
    return BenchVariant(name.strip(), path, options, threads_value, frame_prep, steps)


def summarize_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max / mean (ms) and the count of ``samples`` (ms)."""
    if not samples:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"),
                "mean": float("nan"), "n": 0}
    values = np.asarray(samples, dtype=np.float64)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "max": float(values.max()), "mean": float(values.mean()), "n": int(values.size)}


def limit_and_ratios(results: dict[str, dict]) -> None:
    """Add ``limit_ms`` (prefix + one expert call) and ``ratio_to_limit`` to each step count.

    The limit comes from the 1-step run when there is one (else from the fewest steps run),
    and the same limit is used for every step count. Also adds ``expert_total_vs_1step``: the
    expert-only time relative to one step.
    """
    if not results:
        return
    base = results.get("1") or results[min(results, key=int)]
    limit = base["prefix_ms_p50"] + base["expert_ms_p50"]
    one_step_expert = base["expert_total_ms_p50"] * 1.0
    base_steps = int(base["steps"])
    for entry in results.values():
        entry["limit_ms"] = limit
        entry["ratio_to_limit"] = entry["e2e_ms_p50"] / limit if limit > 0 else float("nan")
        per_step_base = one_step_expert / base_steps
        entry["expert_total_vs_1step"] = (entry["expert_total_ms_p50"] / per_step_base
                                          if per_step_base > 0 else float("nan"))


# ------------------------------------------------------------------------------------------------
# Models


def _robot(joints: int, image_size: int, camera: str = "top") -> Any:
    from snapflow_ros.policies.base import RobotInterface

    names = tuple(f"joint_{i}" for i in range(joints))
    return RobotInterface(joint_names=names, camera_keys=(camera,), image_height=image_size,
                          image_width=image_size)


def build_named_policy(name: str, *, size: str, device: Any, weights_dtype: str, joints: int,
                       workdir: Path) -> Any:
    """A random-weight policy: ``compact`` (demo config, 128 px) or a VLA (224 px camera).

    VLAs at ``size="real"`` keep LeRobot's dimensions (SmolVLA on a SmolVLM2-500M config written
    locally, PI0 / PI05 on Gemma 2B + 300M); ``"tiny"`` uses the test backbones. Built offline,
    directly on ``device``.
    """
    import torch

    from snapflow_ros.policies.normalization import NormalizationStats

    if name == "compact":
        from snapflow_ros.policies.compact import CompactFlowPolicy, CompactPolicyConfig

        robot = _robot(joints, 128)
        policy = CompactFlowPolicy(CompactPolicyConfig(), robot)
        return policy.to(device).eval()
    from snapflow_ros.policies.lerobot_vla import LeRobotVLAConfig, policy_class_for
    from snapflow_ros.policies.lerobot_vla.offline_backbones import (
        SMOLVLM2_500M_DIMS,
        TINY_PALIGEMMA_DIMS,
        TINY_SMOLVLM_DIMS,
        train_tokenizer,
        write_smolvlm_backbone,
    )

    robot = _robot(joints, 224, camera="cam_0")
    overrides: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if name == "smolvla":
        dims = SMOLVLM2_500M_DIMS if size == "real" else TINY_SMOLVLM_DIMS
        options["vlm_model_name"] = str(write_smolvlm_backbone(workdir / "smolvlm", dims))
        if size == "tiny":
            options["image_size"] = 64
    else:
        options["tokenizer_path"] = str(train_tokenizer(workdir / "tokenizer"))
        if size == "tiny":
            overrides["backbone_dims"] = TINY_PALIGEMMA_DIMS
            options["image_size"] = 32
    if size == "tiny":
        overrides.update(max_state_dim=max(8, joints), max_action_dim=max(8, joints))
    config = LeRobotVLAConfig(device=str(device), dtype=weights_dtype,
                              lerobot_overrides=overrides, **options)
    stats = NormalizationStats.identity(joints, joints)
    with torch.device(device):
        policy = policy_class_for(name).build(config, robot, stats)
    return policy.to(device).eval()


def load_or_build(config: LatencyBenchConfig, device: Any, workdir: Path) -> tuple[Any, str]:
    """The policy to benchmark and a label for it."""
    if config.checkpoint:
        from snapflow_ros.policies.checkpoint import load_policy

        return load_policy(config.checkpoint, device=device), f"checkpoint {config.checkpoint}"
    policy = build_named_policy(config.policy, size=config.size, device=device,
                                weights_dtype=config.weights_dtype, joints=config.joints,
                                workdir=workdir)
    label = config.policy if config.policy == "compact" else f"{config.policy} ({config.size})"
    return policy, label


# ------------------------------------------------------------------------------------------------
# The ROS publish stage


class RosTrajectoryPublisher:
    """Publishes chunks as ``trajectory_msgs/JointTrajectory``, built as the policy node does.

    Imports rclpy when constructed (it is optional here): use :meth:`create`, which returns None
    and the reason where rclpy is not installed or does not start.
    """

    def __init__(self, joint_names: Sequence[str], period_s: float) -> None:
        import rclpy
        from rclpy.context import Context
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        self._message_types = (JointTrajectory, JointTrajectoryPoint)
        self._context = Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node(f"snapflow_latency_bench_{os.getpid()}",
                                       context=self._context)
        self._publisher = self._node.create_publisher(JointTrajectory,
                                                      "snapflow_latency_bench/trajectory", 10)
        self.joint_names = list(joint_names)
        self.period_s = float(period_s)

    @classmethod
    def create(cls, joint_names: Sequence[str],
               period_s: float) -> tuple[RosTrajectoryPublisher | None, str]:
        """``(publisher, "")``, or ``(None, why)`` where rclpy is missing or fails to start."""
        try:
            return cls(joint_names, period_s), ""
        except ImportError as exc:
            return None, f"rclpy not installed ({exc.name})"
        except Exception as exc:  # noqa: BLE001 - an optional stage: report and go on
            return None, f"rclpy failed to start ({type(exc).__name__}: {exc})"

    def publish(self, actions: np.ndarray) -> None:
        """Build and publish one trajectory of ``actions`` ``(H, A)`` (one point per tick)."""
        trajectory_type, point_type = self._message_types
        message = trajectory_type()
        message.header.stamp = self._node.get_clock().now().to_msg()
        message.joint_names = self.joint_names
        for index, action in enumerate(actions):
            point = point_type()
            point.positions = [float(v) for v in action]
            nanoseconds = int(round(index * self.period_s * 1e9))
            point.time_from_start.sec = nanoseconds // 1_000_000_000
            point.time_from_start.nanosec = nanoseconds % 1_000_000_000
            message.points.append(point)
        self._publisher.publish(message)

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self._node.destroy_node()
        self._context.try_shutdown()


# ------------------------------------------------------------------------------------------------
# The pipeline of one inference, split into stages


class _Pipeline:
    """The stages of one inference for one variant (see the module documentation)."""

    def __init__(self, policy: Any, variant: BenchVariant, seed: int) -> None:
        import torch

        from snapflow_ros.runtime.fast_inference import FastInference

        self.torch = torch
        self.policy = policy
        self.variant = variant
        self.device = torch.device(policy.device)
        options = variant.fast_config() if variant.path == "fast" else None
        self.fast = FastInference(policy, options) if variant.path == "fast" else None
        # The plain paths share FastInference's preparation (device move / LeRobot preprocessor)
        # so that only prefix and expert differ between paths.
        self._plain = FastInference(policy) if self.fast is None else None
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.robot = policy.robot
        self._images: dict[str, Any] = {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def preprocess(self, frame: np.ndarray, state: np.ndarray) -> tuple[dict, Any]:
        torch = self.torch
        pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)
        batch = {"images": {key: pixels for key in self.robot.camera_keys},
                 "state": torch.from_numpy(state).unsqueeze(0), "task": [PROMPT]}
        runner = self.fast or self._plain
        prepared = runner.prepare(batch)
        noise = runner.draw_noise(1, self.generator)
        return prepared, noise

    def prefix(self, prepared: dict) -> Any:
        torch = self.torch
        if self.fast is not None:
            return self.fast.encode(prepared)
        if self.variant.path == "naive":
            with torch.enable_grad():
                return _encode(self.policy, prepared)
        return self._plain.encode(prepared)

    def expert(self, context: Any, prepared: dict, noise: Any, steps: int, mode: str) -> Any:
        torch = self.torch
        if self.fast is not None:
            return self.fast.sample(context, noise, steps, mode)
        if self.variant.path == "sampler":
            from snapflow_ros.snapflow.sampler import sample_chunk

            return sample_chunk(self.policy, context, num_steps=steps, mode=mode, noise=noise)
        from snapflow_ros.runtime.fast_inference import sampling_grid

        x = noise
        with torch.enable_grad():
            for t_now, s_now, dt in sampling_grid(steps, mode):
                # What a loop over a policy's forward does: the prefix again for every call.
                context = _encode(self.policy, prepared)
                t = torch.full((1,), t_now, device=self.device)
                s = torch.full((1,), s_now, device=self.device)
                x = x - dt * self.policy.velocity(x, s, t, context)
        return x.detach()

    def postprocess(self, x: Any) -> np.ndarray:
        runner = self.fast or self._plain
        actions = runner.to_robot_actions(x)
        return actions[0].detach().to("cpu", self.torch.float64).numpy()

    def close(self) -> None:
        for runner in (self.fast, self._plain):
            if runner is not None:
                runner.close()


def _encode(policy: Any, prepared: dict) -> Any:
    """The prefix of a prepared batch, with whatever autograd mode is active."""
    if hasattr(policy, "encode_preprocessed"):
        return policy.encode_preprocessed(prepared)
    return policy.encode(prepared)


# ------------------------------------------------------------------------------------------------
# Measurement


class _Frames:
    """One synthetic camera frame as the message payload, and its decode / resize."""

    def __init__(self, height: int, width: int, transport: str, seed: int) -> None:
        from snapflow_ros.runtime.image_decoding import decode_compressed, decode_image

        rng = np.random.default_rng(seed)
        # A smooth image with texture: JPEG sizes and decode times close to a camera's.
        ys, xs = np.mgrid[0:height, 0:width]
        base = np.stack([(xs * 255 // max(width - 1, 1)), (ys * 255 // max(height - 1, 1)),
                         ((xs + ys) * 127 // max(width + height - 2, 1))], axis=-1)
        noise = rng.integers(0, 32, (height, width, 3))
        self.rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
        self.height, self.width, self.transport = height, width, transport
        if transport == "compressed":
            import cv2

            ok, encoded = cv2.imencode(".jpg", self.rgb[:, :, ::-1])
            if not ok:
                raise RuntimeError("JPEG encoding of the synthetic frame failed")
            self.payload = encoded.tobytes()
            self._decode = lambda: decode_compressed("jpeg", self.payload)
        else:
            self.payload = self.rgb.tobytes()
            self._decode = lambda: decode_image("rgb8", height, width, width * 3, self.payload)

    def decode(self) -> np.ndarray:
        return self._decode()


def _measure_steps(pipeline: _Pipeline, frames: _Frames, state: np.ndarray, steps: int,
                   config: LatencyBenchConfig, frame_prep: str,
                   publisher: RosTrajectoryPublisher | None) -> dict[str, Any]:
    from snapflow_ros.runtime.image_decoding import resize_for_model

    robot = pipeline.robot
    size = (robot.image_height, robot.image_width)
    mode = config.mode

    def resize(rgb: np.ndarray) -> np.ndarray:
        return resize_for_model(rgb, *size)

    def once_e2e(include_frame: bool, ready: np.ndarray) -> np.ndarray:
        image = resize(frames.decode()) if include_frame else ready
        prepared, noise = pipeline.preprocess(image, state)
        context = pipeline.prefix(prepared)
        x = pipeline.expert(context, prepared, noise, steps, mode)
        actions = pipeline.postprocess(x)
        if publisher is not None:
            publisher.publish(actions)
        return actions

    ready = resize(frames.decode())
    started = time.perf_counter()
    for _ in range(config.warmup):
        once_e2e(True, ready)
    pipeline.sync()
    warmup_s = time.perf_counter() - started

    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    clock = time.perf_counter
    for _ in range(config.repeats):
        t0 = clock()
        rgb = frames.decode()
        t1 = clock()
        image = resize(rgb)
        t2 = clock()
        prepared, noise = pipeline.preprocess(image, state)
        pipeline.sync()
        t3 = clock()
        context = pipeline.prefix(prepared)
        pipeline.sync()
        t4 = clock()
        x = pipeline.expert(context, prepared, noise, steps, mode)
        pipeline.sync()
        t5 = clock()
        actions = pipeline.postprocess(x)
        t6 = clock()
        if publisher is not None:
            publisher.publish(actions)
        t7 = clock()
        for name, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5),
                                         (t5, t6), (t6, t7))):
            stages[name].append((b - a) * 1e3)
    if publisher is None:
        stages["publish"] = []

    include_frame = frame_prep == "inference"
    e2e: list[float] = []
    for _ in range(config.repeats):
        start = clock()
        once_e2e(include_frame, ready)
        e2e.append((clock() - start) * 1e3)

    summary = {name: summarize_ms(values) for name, values in stages.items()}
    expert_calls = [value / steps for value in stages["expert"]]
    return {
        "steps": steps,
        "e2e_ms_p50": summarize_ms(e2e)["p50"],
        "e2e_ms_p95": summarize_ms(e2e)["p95"],
        "e2e_ms_max": summarize_ms(e2e)["max"],
        "prefix_ms_p50": summary["prefix"]["p50"],
        "expert_ms_p50": summarize_ms(expert_calls)["p50"],
        "expert_total_ms_p50": summary["expert"]["p50"],
        "stages": summary,
        "e2e": summarize_ms(e2e),
        "frame_prep": frame_prep,
        "warmup_s": warmup_s,
    }


def _machine(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "cpus": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    with contextlib.suppress(OSError):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    info.setdefault("cpu", platform.processor() or platform.machine())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_latency_benchmark(config: LatencyBenchConfig, variants: Sequence[BenchVariant] = (),
                          *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build (or load) the model once and measure every variant; returns the report mapping.

    A variant that fails is reported with its error and the next one runs. Ctrl-C (SIGINT, as
    ``timeout --signal=INT`` sends) stops measuring and returns what was measured, with
    ``report["interrupted"]`` set.
    """
    import torch

    from snapflow_ros.runtime.policy_runner import resolve_device

    log = log or (lambda line: None)
    variants = list(variants) or [BenchVariant("default")]
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must be unique, got {names}")
    if config.threads:
        torch.set_num_threads(config.threads)
    default_threads = torch.get_num_threads()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    workdir = Path(tempfile.mkdtemp(prefix="snapflow_latency_"))
    started = time.perf_counter()
    policy, label = load_or_build(config, device, workdir)
    build_s = time.perf_counter() - started
    robot = policy.robot
    log(f"built {label} on {device} in {build_s:.1f} s")
    height = config.camera_height or robot.image_height
    width = config.camera_width or robot.image_width
    frames = _Frames(height, width, config.transport, config.seed)
    state = np.random.default_rng(config.seed).normal(
        0.0, 0.3, len(robot.joint_names)).astype(np.float32)
    publisher, why = None, "disabled (--no-publish)"
    if config.publish:
        publisher, why = RosTrajectoryPublisher.create(robot.action_names, 0.02)
        if publisher is None:
            log(f"publish stage: {why}; reported as n/a")
    report: dict[str, Any] = {
        "benchmark": "latency", "date": datetime.datetime.now().astimezone().isoformat(
            timespec="seconds"),
        "policy": label, "policy_type": getattr(policy, "policy_type", "?"),
        "parameters": int(sum(p.numel() for p in policy.parameters())),
        "chunk_size": int(policy.chunk_size), "action_dim": int(policy.action_dim),
        "camera": {"height": height, "width": width, "transport": config.transport},
        "model_input": [robot.image_height, robot.image_width],
        "device": str(device), "build_s": build_s, "config": config_to_dict(config),
        "publish_stage": publisher is not None,
        "publish_note": "" if publisher is not None else why, "variants": {},
    }
    try:
        for variant in variants:
            torch.set_num_threads(variant.threads or default_threads)
            frame_prep = variant.frame_prep or config.frame_prep
            entry: dict[str, Any] = {"path": variant.path, "options": dict(variant.options),
                                     "threads": torch.get_num_threads(),
                                     "frame_prep": frame_prep, "results": {}}
            pipeline = None
            try:
                pipeline = _Pipeline(policy, variant, config.seed)
                for steps in variant.steps or config.steps:
                    result = _measure_steps(pipeline, frames, state, steps, config, frame_prep,
                                            publisher)
                    entry["results"][str(steps)] = result
                    log(f"[{variant.name}] {steps} step(s): e2e p50 {result['e2e_ms_p50']:.2f} "
                        f"ms, prefix {result['prefix_ms_p50']:.2f} ms, expert "
                        f"{result['expert_ms_p50']:.2f} ms/call")
                limit_and_ratios(entry["results"])
            except KeyboardInterrupt:
                # A time box ran out (SIGINT): keep what was measured, skip the rest.
                limit_and_ratios(entry["results"])
                entry["error"] = "interrupted"
                report["interrupted"] = True
                log(f"[{variant.name}] interrupted: reporting what was measured")
            except Exception as exc:  # noqa: BLE001 - one variant failing keeps the others
                entry["error"] = f"{type(exc).__name__}: {exc}"
                log(f"[{variant.name}] failed: {entry['error']}")
            if pipeline is not None:
                if pipeline.fast is not None:
                    entry["fast_inference"] = pipeline.fast.status
                pipeline.close()
            if device.type == "cuda":
                entry["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                torch.cuda.empty_cache()
            report["variants"][variant.name] = entry
            if report.get("interrupted"):
                break
    finally:
        if publisher is not None:
            publisher.close()
        torch.set_num_threads(default_threads)
    report["machine"] = _machine(device)
    first = report["variants"][variants[0].name]
    report["results"] = first.get("results", {})
    return report


# ------------------------------------------------------------------------------------------------
# Reports


def _cell(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # NaN: not measured
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """Markdown: one table per variant (per-stage p50, e2e p50 / p95 / max, limit, ratio)."""
    machine = report.get("machine", {})
    where = machine.get("gpu") or machine.get("cpu", "?")
    load = machine.get("load_average")
    lines = [f"### {report['policy']}: {report['parameters'] / 1e6:.1f} M parameters, "
             f"{report['device']} ({where}), camera {report['camera']['height']}x"
             f"{report['camera']['width']} {report['camera']['transport']}, batch 1",
             ""]
    if load:
        lines += [f"Load average at the end: {', '.join(map(str, load))} "
                  f"({machine.get('cpus')} CPUs).", ""]
    header = ("| variant | steps | e2e p50 | e2e p95 | e2e max | decode | resize | preprocess "
              "| prefix | expert/call | postprocess | publish | limit | e2e / limit |")
    lines += [header, "|" + "---|" * 14]
    for name, entry in report["variants"].items():
        if "error" in entry and not entry["results"]:
            lines.append(f"| {name} | failed: {entry['error'][:120]} |" + " |" * 12)
            continue
        for steps, result in entry["results"].items():
            stage = result["stages"]
            cells = [name, steps, _cell(result["e2e_ms_p50"]), _cell(result["e2e_ms_p95"]),
                     _cell(result["e2e_ms_max"]), _cell(stage["decode"]["p50"]),
                     _cell(stage["resize"]["p50"]), _cell(stage["preprocess"]["p50"]),
                     _cell(result["prefix_ms_p50"]), _cell(result["expert_ms_p50"]),
                     _cell(stage["postprocess"]["p50"]), _cell(stage["publish"]["p50"]),
                     _cell(result.get("limit_ms")), _cell(result.get("ratio_to_limit"))]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Times in ms (p50 unless noted). e2e: the stages back to back without "
              "barriers; decode / resize count in it only with frame_prep=inference. limit: "
              "prefix + one expert call of the 1-step run."]
    notes = []
    for name, entry in report["variants"].items():
        options = ", ".join(f"{k}={v}" for k, v in entry["options"].items()) or "defaults"
        text = (f"- {name}: path={entry['path']}, {options}, threads={entry['threads']}, "
                f"frame_prep={entry['frame_prep']}")
        ratio = _expert_ratio(entry)
        if ratio is not None:
            text += f"; expert-only 10 steps / 1 step = {ratio:.1f}x"
        for graph_set in entry.get("fast_inference", {}).get("graph_sets", []):
            if graph_set.get("notes"):
                text += "; " + "; ".join(f"{k}: {v[:160]}" for k, v in graph_set["notes"].items())
        if entry.get("error"):
            text += f"; error: {entry['error'][:200]}"
        notes.append(text)
    return "\n".join(lines + [""] + notes) + "\n"


def _expert_ratio(entry: dict[str, Any]) -> float | None:
    results = entry.get("results", {})
    if "1" in results and "10" in results:
        one = results["1"]["expert_total_ms_p50"]
        return results["10"]["expert_total_ms_p50"] / one if one > 0 else None
    return None


# ------------------------------------------------------------------------------------------------
# Command line


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4,10, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"step counts must be >= 1, got {text!r}")
    return values


def add_arguments_latency(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bench latency``."""
    source = parser.add_argument_group("model")
    source.add_argument("--checkpoint", default="", help="checkpoint or run directory")
    source.add_argument("--policy", choices=NAMED_POLICIES, default="compact",
                        help="named architecture with random weights when no --checkpoint "
                             "(compact: the demo configuration)")
    source.add_argument("--size", choices=SIZES, default="real",
                        help="VLA dimensions (default real)")
    source.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    source.add_argument("--weights-dtype", choices=("float32", "bfloat16"), default=None,
                        help="VLA weights (default: bfloat16 on CUDA, float32 on CPU)")
    work = parser.add_argument_group("workload")
    work.add_argument("--steps", type=_int_list, default=(1, 2, 4, 10), metavar="1,2,4,10")
    work.add_argument("--mode", choices=("jump", "euler"), default="jump")
    work.add_argument("--repeats", type=int, default=50)
    work.add_argument("--warmup", type=int, default=5)
    work.add_argument("--camera-size", default="", metavar="HxW",
                      help="camera frame size (default: the model's input size)")
    work.add_argument("--transport", choices=TRANSPORTS, default="raw")
    work.add_argument("--frame-prep", choices=FRAME_PREPS, default="arrival",
                      help="decode + resize on arrival (off the inference path, default) or "
                           "on the inference thread (counted in e2e)")
    work.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    work.add_argument("--no-publish", action="store_true",
                      help="skip the ROS publish stage even where rclpy is installed")
    speed = parser.add_argument_group("speed options (one variant; --variant for several)")
    speed.add_argument("--accelerate", default="none",
                       help="none, compile, cuda_graph or compile_cuda_graph")
    speed.add_argument("--dtype", default="float32", help="float32 or bfloat16 (autocast)")
    speed.add_argument("--attention", default="model", help="model or sdpa")
    speed.add_argument("--prompt-bucket", type=int, default=0,
                       help="VLAs: trim prompt padding to a multiple of this many tokens")
    speed.add_argument("--variant", action="append", default=[], metavar="NAME:key=value,...",
                       help="a named set of options, repeatable, e.g. "
                            "graph:accelerate=cuda_graph,dtype=bfloat16 or naive:path=naive "
                            "(keys: path=fast|sampler|naive, threads, frame_prep, steps=1+10 "
                            "and the speed options)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    out.add_argument("--markdown", type=Path, default=None, help="write the table here")


def _camera_size(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--camera-size must look like 480x640, got {text!r}") from None
    return height, width


def config_from_args(args: argparse.Namespace) -> tuple[LatencyBenchConfig, list[BenchVariant]]:
    """The benchmark config and variants of parsed ``snapflow bench latency`` arguments."""
    height, width = _camera_size(args.camera_size)
    weights_dtype = args.weights_dtype
    if weights_dtype is None:
        import torch

        cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        weights_dtype = "bfloat16" if cuda else "float32"
    config = LatencyBenchConfig(
        policy=args.policy, checkpoint=args.checkpoint, size=args.size, device=args.device,
        weights_dtype=weights_dtype, steps=tuple(args.steps), mode=args.mode,
        repeats=args.repeats, warmup=args.warmup, camera_height=height, camera_width=width,
        transport=args.transport, frame_prep=args.frame_prep, threads=args.threads,
        publish=not args.no_publish)
    if args.variant:
        variants = [parse_variant(text) for text in args.variant]
    else:
        variants = [BenchVariant("default", options={
            "accelerate": args.accelerate, "dtype": args.dtype, "attention": args.attention,
            "prompt_bucket": args.prompt_bucket})]
    return config, variants


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def run_latency(args: argparse.Namespace) -> int:
    """Run ``snapflow bench latency``; returns the exit code (0, 2 bad input, 130 interrupted)."""
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        config, variants = config_from_args(args)
        report = run_latency_benchmark(config, variants, log=log)
    except ConfigError as exc:
        log(f"error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        log("interrupted")
        return EXIT_INTERRUPTED
    report["command"] = list(getattr(args, "argv", sys.argv))
    table = markdown_table(report)
    print(table, end="", flush=True)
    if args.markdown is not None:
        _write(args.markdown, table)
    if args.json is not None:
        _write(args.json, json.dumps(report, indent=2, default=str) + "\n")
    return EXIT_INTERRUPTED if report.get("interrupted") else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m snapflow_ros.evaluation.latency_bench``: ``snapflow bench latency``."""
    parser = argparse.ArgumentParser(prog="snapflow bench latency",
                                     description=__doc__.splitlines()[0])
    add_arguments_latency(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = ["snapflow", "bench", "latency", *argv]
    return run_latency(args)


if __name__ == "__main__":
    sys.exit(main())
