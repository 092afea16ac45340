# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Load a checkpoint and turn observations into action chunks, timing each stage.

The only runtime module that imports torch: the node imports it lazily, in ``on_configure``.
Threading: a :class:`PolicyRunner` is meant to be created, warmed up and used by one thread, the
node's inference thread (CUDA contexts, cuDNN autotuning and a model's cached state are
per-thread or not re-entrant). Calls are serialised by a lock anyway, so a stray call from
another thread waits instead of corrupting state.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.runtime.image_decoding import resize_for_model

STAGES = ("preprocess", "model", "postprocess")


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """One chunk ``(H, A)`` float64 in robot units, and the time of each stage in ms."""

    actions: np.ndarray
    timings_ms: dict[str, float]
    num_steps: int
    mode: str


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU raises ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA device is available")
    return resolved


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

    @property
    def action_names(self) -> tuple[str, ...]:
        """Commanded joints, in the order of the chunk's columns."""
        return tuple(self.robot.action_names)

    def _synchronize(self) -> None:
        # Kernels run asynchronously on a GPU: without a barrier, the model's time would be
        # charged to whichever stage next touches the result.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def build_batch(self, observation: Any) -> dict:
        """The policy batch of one observation (images resized to the checkpoint's size).

        ``images``: ``{key: (1, 3, h, w) uint8}``, ``state``: ``(1, S)`` float32, ``task``:
        ``[str]``, all on the runner's device.
        """
        height, width = self.robot.image_height, self.robot.image_width
        images = {}
        for key in self.robot.camera_keys:
            if key not in observation.images:
                raise ValueError(f"observation has no image for camera '{key}' "
                                 f"(has {sorted(observation.images)})")
            pixels = np.ascontiguousarray(resize_for_model(observation.images[key], height, width))
            images[key] = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(self.device)
        state = np.asarray(observation.state, dtype=np.float32)
        if state.shape != (len(self.robot.joint_names),):
            raise ValueError(f"state of shape {state.shape} for "
                             f"{len(self.robot.joint_names)} joints")
        return {"images": images,
                "state": torch.from_numpy(state).unsqueeze(0).to(self.device),
                "task": [str(getattr(observation, "task", "") or "")]}

    def infer(self, observation: Any, num_steps: int = 1, mode: str = "jump",
              *, generator: torch.Generator | None = None) -> InferenceResult:
        """Predict one chunk for ``observation`` with ``num_steps`` sampler steps.

        ``observation`` has ``images``, ``state`` and ``task`` as
        :class:`~snapflow_ros.runtime.observation_buffer.Observation` has.
        """
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
        expected = (self.chunk_size, len(self.action_names))
        if actions.shape != expected:
            raise RuntimeError(f"policy returned a chunk of shape {actions.shape}, "
                               f"expected {expected}")
        timings = {"preprocess": (encoded - start) * 1e3, "model": (sampled - encoded) * 1e3,
                   "postprocess": (done - sampled) * 1e3}
        return InferenceResult(actions, timings, num_steps, mode)

    def warmup(self, iterations: int = 2, num_steps: int = 1,
               mode: str = "jump", task: str = "") -> InferenceResult | None:
        """Run ``iterations`` inferences on a blank observation (lazy init, kernel autotuning).

        Uses its own noise, so a seeded runner's later chunks do not depend on the warm-up. With
        an ``accelerate`` option this compiles / captures the path for ``num_steps`` and ``mode``
        (and for ``task``'s prompt length, which can decide input shapes).
        """
        blank = np.zeros((self.robot.image_height, self.robot.image_width, 3), dtype=np.uint8)
        observation = _BlankObservation(
            images={key: blank for key in self.robot.camera_keys},
            state=np.zeros(len(self.robot.joint_names)), task=task)
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
            torch.cuda.empty_cache()


@dataclasses.dataclass(frozen=True)
class _BlankObservation:
    images: dict
    state: np.ndarray
    task: str
