# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The latency benchmark: where the time of one chunk goes, and how far it is from the limit.

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
  published (only where rclpy is installed; otherwise ``n/a`` and not part of ``e2e``). That
  stage is ROS code: :mod:`snapflow_ros.nodes.harness.latency_publish` provides it and
  ``snapflow bench latency`` passes it in (``publisher_factory``).

``e2e`` is the same sequence run back to back without the per-stage barriers (what the node's
inference thread does); ``decode`` and ``resize`` count in it only with ``frame_prep=inference``
(the policy node decodes on arrival). The limit is ``prefix + one expert call`` (of the 1-step
run) and ``ratio_to_limit = e2e p50 / limit``. Variants (``--variant``) rerun the same workload
with other speed options on the same model; ``path=sampler`` is the plain sampler and
``path=naive`` a reference without the basics (autograd on, prefix recomputed for every expert
call), so the effect of each option is measured, not assumed. The stages run the runtime's own
code (:mod:`snapflow_ros.evaluation.latency_stages`).

Output (:func:`run_latency_benchmark`'s report, written by ``snapflow bench latency`` as a
markdown table on stdout and ``--markdown FILE``, and as JSON with ``--json FILE``):
``results["<steps>"]`` holds ``e2e_ms_p50``, ``e2e_ms_p95``, ``prefix_ms_p50``,
``expert_ms_p50`` (per call), ``limit_ms`` and ``ratio_to_limit`` of the first variant;
``variants[name]`` the same for each variant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, config_to_dict, param
from snapflow_ros.evaluation.latency_stages import (
    PATHS,
    PROMPT,
    InferenceStages,
    OnnxInferenceStages,
    SyntheticFrames,
    TrajectoryPublisher,
    measure_steps,
)

NAMED_POLICIES = ("compact", "smolvla", "pi0", "pi05")
SIZES = ("real", "tiny")
FRAME_PREPS = ("inference", "arrival")
TRANSPORTS = ("raw", "compressed")
BACKENDS = ("torch", "onnxruntime", "openvino")
EXPORT_BACKENDS = ("onnxruntime", "openvino")
"""The backends that run the model exported to ONNX."""
PRECISIONS = {"torch": ("float32",), "onnxruntime": ("float32", "int8"),
              "openvino": ("float32", "int8", "bfloat16")}
COMMAND_PERIOD_S = 0.02  # the published trajectory's point spacing (the demo's control period)
# ``(joint_names, period_s) -> (publisher, "")`` or ``(None, why not)``.
PublisherFactory = Callable[[Sequence[str], float], tuple[TrajectoryPublisher | None, str]]


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

    ``None`` fields take the benchmark's own setting. ``backend="onnxruntime"`` runs the model
    exported to ONNX (``snapflow export onnx``, made in a temporary folder) in ONNX Runtime with
    ``threads`` intra-op threads and ``precision`` float32 or int8 graphs; its stages are the
    export's prefix, expert and actions graphs. ``backend="openvino"`` runs the same folder
    compiled by OpenVINO on the CPU (or an Intel GPU with device auto), precision float32,
    int8 or bfloat16 (the bf16 inference hint, on CPUs that have it).
    """

    name: str
    path: str = "fast"
    options: dict = dataclasses.field(default_factory=dict)
    threads: int | None = None
    frame_prep: str | None = None
    steps: tuple[int, ...] | None = None
    backend: str = "torch"
    precision: str = "float32"
    providers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"variant {self.name}: backend must be one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS[self.backend]:
            raise ConfigError(f"variant {self.name}: backend={self.backend} takes precision "
                              f"{', '.join(PRECISIONS[self.backend])}, got {self.precision!r} "
                              "(int8: onnxruntime / openvino; bfloat16: openvino)")
        if self.backend in EXPORT_BACKENDS and (self.options or self.path != "fast"):
            raise ConfigError(f"variant {self.name}: path and speed options are torch options; "
                              f"backend={self.backend} takes threads, precision, "
                              + ("providers, " if self.backend == "onnxruntime" else "")
                              + "frame_prep, steps")
        if self.backend != "onnxruntime" and self.providers:
            raise ConfigError(f"variant {self.name}: providers are an onnxruntime option")
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
    counts joined by ``+``), ``backend`` (torch / onnxruntime / openvino), ``precision``
    (onnxruntime: float32 / int8; openvino: float32 / int8 / bfloat16), ``providers``
    (onnxruntime: execution providers joined by ``+`` in priority order, e.g.
    ``tensorrt+cuda``; default: the ``device``) and any field of
    :class:`~snapflow_ros.runtime.fast_inference.FastInferenceConfig`, e.g.
    ``graph_bf16:accelerate=cuda_graph,dtype=bfloat16,steps=1+10`` or
    ``ort:backend=onnxruntime,threads=1``, ``ort_cuda:backend=onnxruntime,providers=cuda`` or
    ``ov:backend=openvino,threads=1,precision=bfloat16``.
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
    backend = fields.pop("backend", "torch")
    precision = fields.pop("precision", "float32")
    providers = tuple(filter(None, fields.pop("providers", "").split("+")))
    options: dict[str, Any] = {}
    for key, value in fields.items():
        options[key] = int(value) if value.isdigit() else value
    try:
        threads_value = int(threads) if threads is not None else None
        steps = tuple(int(v) for v in steps_text.split("+")) if steps_text is not None else None
    except ValueError:
        raise ConfigError(f"variant {text!r}: threads and steps (like 1+10) must be "
                          "integers") from None
    return BenchVariant(name.strip(), path, options, threads_value, frame_prep, steps, backend,
                        precision, providers)


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
    from snapflow_ros.policies.registry import new_policy

    if name == "compact":
        policy = new_policy("compact", {}, _robot(joints, 128), None)
        return policy.to(device).eval()
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
    options.update(device=str(device), dtype=weights_dtype, lerobot_overrides=overrides)
    stats = NormalizationStats.identity(joints, joints)
    with torch.device(device):
        policy = new_policy(name, options, robot, stats)
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


def _onnx_folder(policy: Any, workdir: Path, made: dict[str, Path],
                 variants: Sequence[BenchVariant], log: Callable[[str], None]) -> Path:
    """The policy exported to ONNX once per run (int8 graphs too when a variant asks for them)."""
    if "folder" not in made:
        from snapflow_ros.export.onnx_export import OnnxExportConfig, export_policy_onnx

        int8 = any(v.backend in EXPORT_BACKENDS and v.precision == "int8" for v in variants)
        started = time.perf_counter()
        # A VLA's prompt is traced into its graphs: the benchmark's own.
        export_policy_onnx(policy, workdir / "onnx", OnnxExportConfig(
            quantize="dynamic" if int8 else "none", task=PROMPT), log=lambda line: None)
        made["folder"] = workdir / "onnx"
        log(f"exported to ONNX in {time.perf_counter() - started:.1f} s")
    return made["folder"]


# ------------------------------------------------------------------------------------------------
# Measurement


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
                          *, log: Callable[[str], None] | None = None,
                          publisher_factory: PublisherFactory | None = None) -> dict[str, Any]:
    """Build (or load) the model once and measure every variant; returns the report mapping.

    A variant that fails is reported with its error and the next one runs. Ctrl-C (SIGINT, as
    ``timeout --signal=INT`` sends) stops measuring and returns what was measured, with
    ``report["interrupted"]`` set. ``publisher_factory`` makes the publish stage (with
    ``config.publish``; e.g. ``RosTrajectoryPublisher.create`` of
    :mod:`snapflow_ros.nodes.harness.latency_publish`); without one it is reported as n/a.
    """
    import torch

    from snapflow_ros.devices import resolve_device

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
    frames = SyntheticFrames(height, width, config.transport, config.seed)
    state = np.random.default_rng(config.seed).normal(
        0.0, 0.3, len(robot.joint_names)).astype(np.float32)
    publisher, why = None, "disabled (--no-publish)"
    if config.publish and publisher_factory is None:
        why = "no publish stage given (snapflow bench latency adds the ROS one)"
    elif config.publish:
        publisher, why = publisher_factory(robot.action_names, COMMAND_PERIOD_S)
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
    onnx_folders: dict[str, Path] = {}
    try:
        for variant in variants:
            torch.set_num_threads(variant.threads or default_threads)
            frame_prep = variant.frame_prep or config.frame_prep
            entry: dict[str, Any] = {"path": variant.path, "options": dict(variant.options),
                                     "threads": torch.get_num_threads(),
                                     "frame_prep": frame_prep, "results": {}}
            stages = None
            try:
                if variant.backend in EXPORT_BACKENDS:
                    entry.update(path=variant.backend, options={"precision": variant.precision})
                    stages = OnnxInferenceStages(
                        _onnx_folder(policy, workdir, onnx_folders, variants, log),
                        variant.precision, torch.get_num_threads(),
                        variant.providers or (config.device,), config.seed,
                        backend=variant.backend)
                    # What the engine resolved the request to (onnxruntime: the CPU fallback).
                    entry["providers"] = stages.runner.providers
                else:
                    stages = InferenceStages(policy, variant.path, variant.fast_config()
                                             if variant.path == "fast" else None, config.seed)
                for steps in variant.steps or config.steps:
                    result = measure_steps(stages, frames, state, steps, mode=config.mode,
                                           warmup=config.warmup, repeats=config.repeats,
                                           frame_prep=frame_prep, publisher=publisher)
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
            if stages is not None:
                if stages.status is not None:
                    entry["fast_inference"] = stages.status
                stages.close()
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
        for folder in onnx_folders.values():
            shutil.rmtree(folder, ignore_errors=True)  # a VLA's graphs take gigabytes
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
        if entry.get("providers"):
            text += f", providers={'+'.join(entry['providers'])}"
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
