# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Load a checkpoint and turn observations into action chunks, timing each stage.

The only runtime module that uses torch, imported when a runner is made (not with the module,
so :class:`RunnerConfig` loads without it). Threading: a :class:`PolicyRunner` is meant to be
created, warmed up and used by one thread, the node's inference thread (CUDA contexts, cuDNN
autotuning and a model's cached state are per-thread or not re-entrant). Calls are serialised
by a lock anyway, so a stray call from another thread waits instead of corrupting state.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.devices import resolve_device
from snapflow_ros.export.manifest import PRECISIONS as ONNX_PRECISIONS
from snapflow_ros.runtime.image_decoding import resize_for_model
from snapflow_ros.runtime.inference_options import ACCELERATIONS, INFERENCE_DTYPES
from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

if TYPE_CHECKING:
    import torch

    from snapflow_ros.policies.base import RobotInterface

RUNNER_TIMING_STAGES = ("preprocess", "model", "postprocess")
"""The keys of :attr:`InferenceResult.timings_ms`."""
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("torch", "onnxruntime", "openvino")
EXPORT_PRECISIONS = (*ONNX_PRECISIONS, "bfloat16")
"""``onnx_precision`` values: the graph files, and bfloat16 (OpenVINO's hint on float32 ones)."""


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """Which checkpoint runs where, and how a chunk is sampled."""

    checkpoint: str = param("", "Checkpoint directory (weights, config, normalisation stats).")
    device: str = param("auto", "Inference device; auto picks cuda when available.",
                        choices=DEVICES)
    seed: int = param(-1, "Seed of the sampling noise; -1 draws fresh noise every run.", low=-1)
    torch_threads: int = param(
        1, "CPU threads torch may use for inference (0: torch's default, one per core). One "
        "leaves a core to the ROS executor: on 2 cores two threads were 10x slower under load "
        "(docs/performance.md); GPU inference does not depend on it.", low=0, high=256)
    num_steps: int = param(1, "Sampler steps per chunk (1 = SnapFlow's one-step jump).",
                           low=1, high=100, runtime=True)
    sampler_mode: str = param("jump", "k-step integration: chained jumps or local Euler.",
                              choices=SAMPLER_MODES, runtime=True)
    accelerate: str = param(
        "none", "Inference fast path: none (plain sampler), compile (torch.compile of the expert "
        "call), cuda_graph (prefix and sampler replayed as CUDA graphs; CUDA only) or "
        "compile_cuda_graph (both). Compiling / capturing happens in configure.",
        choices=ACCELERATIONS)
    inference_dtype: str = param(
        "float32", "Precision of prefix and expert: float32, or bfloat16 autocast (GPUs; changes "
        "actions by about 1% of their spread).", choices=INFERENCE_DTYPES)
    backend: str = param(
        "torch", "Inference backend: torch (checkpoint is a checkpoint or run directory), "
        "onnxruntime or openvino (checkpoint is a `snapflow export onnx` folder; torch_threads "
        "sets their threads, device the execution provider; openvino: cpu, or auto for an "
        "Intel GPU when present).", choices=BACKENDS)
    onnx_precision: str = param(
        "float32", "Graphs the onnxruntime / openvino backends run: float32, int8 (an export "
        "made with --quantize dynamic) or, openvino only, bfloat16 (float32 graphs computed in "
        "bf16 on CPUs with AVX512-BF16 / AMX).", choices=EXPORT_PRECISIONS)

    def __post_init__(self) -> None:
        check_config(self)
        if self.onnx_precision == "bfloat16" and self.backend != "openvino":
            raise ConfigError("onnx_precision bfloat16 is an option of the openvino backend "
                              f"(backend is {self.backend})")


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """One chunk ``(H, A)`` float64 in robot units, and the time of each stage in ms."""

    actions: np.ndarray
    timings_ms: dict[str, float]
    num_steps: int
    mode: str

    @classmethod
    def from_stages(cls, actions: np.ndarray, expected: tuple[int, int], stages: Sequence[float],
                    num_steps: int, mode: str, *, source: str) -> InferenceResult:
        """Check the chunk's shape and time preprocess / model / postprocess from 4 instants (s).

        ``stages``: ``perf_counter`` at start, after preparation, after sampling, at the end.
        """
        if actions.shape != expected:
            raise RuntimeError(f"{source} returned a chunk of shape {actions.shape}, "
                               f"expected {expected}")
        start, prepared, sampled, done = stages
        timings = {"preprocess": (prepared - start) * 1e3, "model": (sampled - prepared) * 1e3,
                   "postprocess": (done - sampled) * 1e3}
        return cls(actions, timings, num_steps, mode)


def policy_batch(robot: RobotInterface, observation: Any, device: torch.device) -> dict:
    """The policy batch of one observation (images resized to the checkpoint's size).

    ``images``: ``{key: (1, 3, h, w) uint8}``, ``state``: ``(1, S)`` float32, ``task``:
    ``[str]``, and ``environment_state`` ``(1, E)`` float32 when the checkpoint reads one, all on
    ``device``. The runner and ``snapflow bench latency`` both build it here.
    """
    import torch

    height, width = robot.image_height, robot.image_width
    images = {}
    for key in robot.camera_keys:
        if key not in observation.images:
            raise ValueError(f"observation has no image for camera '{key}' "
                             f"(has {sorted(observation.images)})")
        pixels = np.ascontiguousarray(resize_for_model(observation.images[key], height, width))
        images[key] = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(device)
    state = np.asarray(observation.state, dtype=np.float32)
    if state.shape != (len(robot.joint_names),):
        raise ValueError(f"state of shape {state.shape} for {len(robot.joint_names)} joints")
    batch = {"images": images, "state": torch.from_numpy(state).unsqueeze(0).to(device),
             "task": [str(getattr(observation, "task", "") or "")]}
    if robot.environment_state_names:
        size = len(robot.environment_state_names)
        environment = np.asarray(getattr(observation, "environment_state", ()), np.float32)
        if environment.shape != (size,):
            raise ValueError(f"environment state of shape {environment.shape} for {size} "
                             f"values {list(robot.environment_state_names)}")
        batch["environment_state"] = torch.from_numpy(environment).unsqueeze(0).to(device)
    return batch


class PolicyRunner:
    """A loaded policy on one device: ``infer(observation) -> InferenceResult``.

    ``expected_robot``: the joints and cameras the robot offers; a checkpoint trained for
    others is refused with a message naming the difference. ``seed``: seeds the sampling noise
    (None or negative: fresh noise). ``num_threads``: torch CPU threads (0: torch's default).
    ``accelerate`` / ``inference_dtype``: the fast path of
    :class:`~snapflow_ros.runtime.fast_inference.FastInference` (``"none"`` / ``"float32"``,
    the defaults, keep the plain sampler); compiling and graph capture happen in :meth:`warmup`.
    """

    def __init__(self, checkpoint_path: str | Path, device: str = "auto",
                 expected_robot: RobotInterface | None = None, seed: int | None = None,
                 num_threads: int = 0, accelerate: str = "none",
                 inference_dtype: str = "float32") -> None:
        import torch

        from snapflow_ros.policies.checkpoint import load_policy

        if num_threads > 0:
            # Process-wide in torch: the runner is the only torch user of a policy node.
            torch.set_num_threads(int(num_threads))

        self.device = resolve_device(device)
        self.policy = load_policy(checkpoint_path, device=self.device,
                                  expected_robot=expected_robot)
        self.robot: RobotInterface = self.policy.robot
        self.chunk_size = int(self.policy.chunk_size)
        self._generator = None
        if seed is not None and seed >= 0:
            self._generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self._lock = threading.Lock()
        self._fast = None
        if accelerate != "none" or inference_dtype != "float32":
            from snapflow_ros.runtime.fast_inference import FastInference, FastInferenceConfig

            self._fast = FastInference(self.policy, FastInferenceConfig(
                accelerate=accelerate, dtype=inference_dtype))

    @classmethod
    def from_config(cls, config: RunnerConfig) -> PolicyRunner:
        """Load ``config.checkpoint`` as ``config`` says (device, seed, threads, fast path).

        With ``backend="onnxruntime"`` this is an
        :class:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner`, with ``"openvino"`` an
        :class:`~snapflow_ros.export.openvino_runner.OpenVinoPolicyRunner` (same interface, no
        torch; a missing OpenVINO is reported with the pip line that installs it).
        """
        if not config.checkpoint:
            raise ConfigError("parameter 'checkpoint' is empty: set it to a checkpoint directory")
        if config.backend == "onnxruntime":
            from snapflow_ros.export.onnx_runner import OnnxPolicyRunner

            return OnnxPolicyRunner.from_config(config)
        if config.backend == "openvino":
            from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

            return OpenVinoPolicyRunner.from_config(config)
        return cls(config.checkpoint, device=config.device,
                   seed=config.seed if config.seed >= 0 else None,
                   num_threads=config.torch_threads, accelerate=config.accelerate,
                   inference_dtype=config.inference_dtype)

    @property
    def action_names(self) -> tuple[str, ...]:
        """Commanded joints, in the order of the chunk's columns."""
        return tuple(self.robot.action_names)

    def _synchronize(self) -> None:
        # Kernels run asynchronously on a GPU: without a barrier, the model's time would be
        # charged to whichever stage next touches the result.
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def build_batch(self, observation: Any) -> dict:
        """The policy batch of one observation: :func:`policy_batch` on the runner's device."""
        return policy_batch(self.robot, observation, self.device)

    def infer(self, observation: Any, num_steps: int = 1, mode: str = "jump",
              *, generator: torch.Generator | None = None) -> InferenceResult:
        """Predict one chunk for ``observation`` with ``num_steps`` sampler steps.

        ``observation`` has ``images``, ``state`` and ``task`` as
        :class:`~snapflow_ros.runtime.observation_buffer.Observation` has.
        """
        import torch

        from snapflow_ros.snapflow.sampler import predict_action_chunk

        with self._lock:
            if self.policy is None:
                raise RuntimeError("PolicyRunner is closed")
            start = time.perf_counter()
            batch = self.build_batch(observation)
            self._synchronize()
            encoded = time.perf_counter()
            generator = generator if generator is not None else self._generator
            with torch.inference_mode():
                if self._fast is not None:
                    chunk = self._fast.predict(batch, num_steps=num_steps, mode=mode,
                                               generator=generator)
                else:
                    chunk = predict_action_chunk(self.policy, batch, num_steps=num_steps,
                                                 mode=mode, generator=generator)
            self._synchronize()
            sampled = time.perf_counter()
            actions = chunk[0].detach().to("cpu", torch.float64).numpy()
            done = time.perf_counter()
        return InferenceResult.from_stages(
            actions, (self.chunk_size, len(self.action_names)), (start, encoded, sampled, done),
            num_steps, mode, source="policy")

    def warmup(self, iterations: int = 2, num_steps: int = 1,
               mode: str = "jump", task: str = "") -> InferenceResult | None:
        """Run ``iterations`` inferences on a blank observation (lazy init, kernel autotuning).

        Uses its own noise, so a seeded runner's later chunks do not depend on the warm-up. With
        an ``accelerate`` option this compiles / captures the path for ``num_steps`` and ``mode``
        (and for ``task``'s prompt length, which can decide input shapes).
        """
        import torch

        blank = np.zeros((self.robot.image_height, self.robot.image_width, 3), dtype=np.uint8)
        observation = _BlankObservation(
            images={key: blank for key in self.robot.camera_keys},
            state=np.zeros(len(self.robot.joint_names)), task=task,
            environment_state=np.zeros(len(self.robot.environment_state_names)))
        generator = torch.Generator(device=self.device).manual_seed(0)
        result = None
        for _ in range(iterations):
            result = self.infer(observation, num_steps, mode, generator=generator)
        return result

    def close(self) -> None:
        """Free the model and return cached CUDA memory; :meth:`infer` raises afterwards.

        cuBLAS keeps its per-process workspace (about 32 MB on an H100) until the process ends.
        """
        with self._lock:
            if self._fast is not None:
                self._fast.close()
                self._fast = None
            self.policy = None
            self._generator = None
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


@dataclasses.dataclass(frozen=True)
class _BlankObservation:
    images: dict
    state: np.ndarray
    task: str
    environment_state: np.ndarray
