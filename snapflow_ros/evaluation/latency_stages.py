# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The stages of one inference, timed one by one for ``snapflow bench latency``.

The stages run the runtime's own code, so the benchmark measures what the policy node runs: the
batch is built by :func:`~snapflow_ros.runtime.policy_runner.policy_batch` (as
``PolicyRunner.build_batch`` builds it), preparation, prefix, expert calls and the conversion to
robot units are :class:`~snapflow_ros.runtime.fast_inference.FastInference`'s stages
(``prepare`` / ``encode`` / ``sample`` / ``to_robot_actions``), and ``path=sampler`` samples with
:func:`~snapflow_ros.snapflow.sampler.sample_chunk`, what ``PolicyRunner`` runs without speed
options. Only ``path=naive`` is the benchmark's own: a reference without the basics (autograd
on, the prefix recomputed for every expert call) that nothing deploys.

``PolicyRunner.infer`` itself is not used: it times the prefix and the expert calls as one
``model`` stage, loads only checkpoints (the benchmark also builds random-weight VLAs) and takes
only two of the speed options.

The ROS publish stage is passed in (:class:`TrajectoryPublisher`); it lives on the ROS side, in
:mod:`snapflow_ros.nodes.harness.latency_publish`. Neither this module nor its callers in
:mod:`snapflow_ros.evaluation` import ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

LATENCY_BENCH_STAGES = ("decode", "resize", "preprocess", "prefix", "expert", "postprocess",
                        "publish")
"""The stages ``snapflow bench latency`` times, in the order one inference runs them."""
PATHS = ("fast", "sampler", "naive")
PROMPT = "pick up the red cube and put it in the bowl on the left"


class TrajectoryPublisher(Protocol):
    """The publish stage: sends one chunk as the policy node would."""

    def publish(self, actions: np.ndarray) -> None:
        """Build and send one trajectory of ``actions`` ``(H, A)`` (robot units)."""

    def close(self) -> None:
        """Release what publishing holds."""


@dataclass(frozen=True)
class _Observation:
    """What :func:`policy_batch` reads of an observation."""

    images: dict
    state: np.ndarray
    task: str
    environment_state: np.ndarray


class InferenceStages:
    """preprocess / prefix / expert / postprocess of one inference on one benchmark path.

    ``path``: ``fast`` (FastInference with ``fast_config``), ``sampler`` (the plain sampler) or
    ``naive`` (the reference). ``seed`` seeds the sampling noise.
    """

    def __init__(self, policy: Any, path: str, fast_config: Any | None, seed: int) -> None:
        import torch

        from snapflow_ros.runtime.fast_inference import FastInference

        if path not in PATHS:
            raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
        self.torch = torch
        self.policy = policy
        self.path = path
        self.robot = policy.robot
        self.device = torch.device(policy.device)
        self.fast = FastInference(policy, fast_config) if path == "fast" else None
        # The plain paths share FastInference's preparation (device move / LeRobot preprocessor)
        # and conversion to robot units, so that only prefix and expert differ between paths.
        self._stages = self.fast or FastInference(policy)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def sync(self) -> None:
        """Wait for the device (a barrier between stages on a GPU)."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def preprocess(self, frame: np.ndarray, state: np.ndarray) -> tuple[dict, Any]:
        """The prepared batch of one camera frame ``(h, w, 3)`` and state ``(S,)``, and noise."""
        from snapflow_ros.runtime.policy_runner import policy_batch

        observation = _Observation({key: frame for key in self.robot.camera_keys}, state, PROMPT,
                                   np.zeros(len(self.robot.environment_state_names)))
        batch = policy_batch(self.robot, observation, self.device)
        return self._stages.prepare(batch), self._stages.draw_noise(1, self.generator)

    def prefix(self, prepared: dict) -> Any:
        """The observation's context (once per chunk; the naive path with autograd on)."""
        if self.path == "naive":
            with self.torch.enable_grad():
                return _encode(self.policy, prepared)
        return self._stages.encode(prepared)

    def expert(self, context: Any, prepared: dict, noise: Any, steps: int, mode: str) -> Any:
        """Integrate ``noise`` ``(1, H, D)`` to a normalised chunk in ``steps`` expert calls."""
        if self.fast is not None:
            return self.fast.sample(context, noise, steps, mode)
        if self.path == "sampler":
            from snapflow_ros.snapflow.sampler import sample_chunk

            return sample_chunk(self.policy, context, num_steps=steps, mode=mode, noise=noise)
        return self._naive_expert(prepared, noise, steps, mode)

    def _naive_expert(self, prepared: dict, noise: Any, steps: int, mode: str) -> Any:
        from snapflow_ros.runtime.fast_inference import sampling_grid

        torch = self.torch
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
        """Robot-unit chunk ``(H, A)`` float64 on the host, as the node publishes it."""
        actions = self._stages.to_robot_actions(x)
        return actions[0].detach().to("cpu", self.torch.float64).numpy()

    @property
    def status(self) -> dict | None:
        """FastInference's status on the fast path (graphs captured or why not), else None."""
        return self.fast.status if self.fast is not None else None

    def close(self) -> None:
        """Drop graphs and buffers, undo the capture shims."""
        self._stages.close()


class OnnxInferenceStages:
    """The same stages on ONNX Runtime: an export folder's prefix, expert and actions graphs.

    ``preprocess`` is :meth:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner.build_batch`
    plus numpy noise; ``threads`` are onnxruntime's intra-op threads. ``backend="openvino"``:
    the same graphs compiled by OpenVINO (``providers[0]`` is its device, cpu / gpu / auto).
    """

    status = None

    def __init__(self, folder: Any, precision: str, threads: int, providers: tuple[str, ...],
                 seed: int, *, backend: str = "onnxruntime") -> None:
        from snapflow_ros.export.onnx_runner import OnnxPolicyRunner

        if backend == "openvino":
            from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

            self.runner = OpenVinoPolicyRunner(folder, device=providers[0], threads=threads,
                                               precision=precision)
        else:
            self.runner = OnnxPolicyRunner(folder, providers=providers, intra_op_threads=threads,
                                           precision=precision)
        self.graphs = self.runner.graphs
        self.robot = self.runner.robot
        self.rng = np.random.default_rng(seed)

    def sync(self) -> None:
        """Nothing to wait for: onnxruntime returns host arrays."""

    def preprocess(self, frame: np.ndarray, state: np.ndarray) -> tuple[dict, np.ndarray]:
        """The graph feeds of one frame ``(h, w, 3)`` and state ``(S,)``, and noise."""
        observation = _Observation({key: frame for key in self.robot.camera_keys}, state, PROMPT,
                                   np.zeros(len(self.robot.environment_state_names)))
        noise = self.rng.standard_normal(
            (1, self.runner.chunk_size, self.runner.action_dim), dtype=np.float32)
        return self.runner.build_batch(observation), noise

    def prefix(self, prepared: dict) -> Any:
        """The context tensors (the prefix graph)."""
        return self.graphs.encode(prepared)

    def expert(self, context: Any, prepared: dict, noise: Any, steps: int, mode: str) -> Any:
        """``steps`` expert-graph calls from ``noise`` to a normalised chunk."""
        return self.graphs.sample(context, noise, steps, mode)

    def postprocess(self, x: Any) -> np.ndarray:
        """Robot-unit chunk ``(H, A)`` float64 (the actions graph)."""
        return np.asarray(self.graphs.to_robot_actions(x)[0], dtype=np.float64)

    def close(self) -> None:
        """Release the sessions."""
        self.runner.close()


def _encode(policy: Any, prepared: dict) -> Any:
    """The prefix of a prepared batch, with whatever autograd mode is active."""
    return policy.encode_preprocessed(prepared)


class SyntheticFrames:
    """One synthetic camera frame as the message payload (raw rgb8 or JPEG), and its decode."""

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
        """The payload decoded to ``(height, width, 3)`` uint8 RGB, as the node decodes it."""
        return self._decode()


def summarize_ms(samples: list[float] | tuple[float, ...]) -> dict[str, float]:
    """p50 / p95 / max / mean (ms) and the count of ``samples`` (ms)."""
    if not samples:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"),
                "mean": float("nan"), "n": 0}
    values = np.asarray(samples, dtype=np.float64)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "max": float(values.max()), "mean": float(values.mean()), "n": int(values.size)}


def measure_steps(stages: InferenceStages, frames: SyntheticFrames, state: np.ndarray,
                  steps: int, *, mode: str, warmup: int, repeats: int, frame_prep: str,
                  publisher: TrajectoryPublisher | None) -> dict[str, Any]:
    """Time every stage of ``steps``-step inferences, then the same back to back (``e2e``).

    Returns ``e2e_ms_p50`` / ``_p95`` / ``_max``, ``prefix_ms_p50``, ``expert_ms_p50`` (per
    call), ``expert_total_ms_p50``, ``stages`` (a :func:`summarize_ms` per stage; publish NaN
    without a publisher), ``e2e``, ``frame_prep`` and ``warmup_s``.
    """
    from snapflow_ros.runtime.image_decoding import resize_for_model

    size = (stages.robot.image_height, stages.robot.image_width)

    def resize(rgb: np.ndarray) -> np.ndarray:
        return resize_for_model(rgb, *size)

    def once_e2e(include_frame: bool, ready: np.ndarray) -> np.ndarray:
        image = resize(frames.decode()) if include_frame else ready
        prepared, noise = stages.preprocess(image, state)
        context = stages.prefix(prepared)
        x = stages.expert(context, prepared, noise, steps, mode)
        actions = stages.postprocess(x)
        if publisher is not None:
            publisher.publish(actions)
        return actions

    ready = resize(frames.decode())
    started = time.perf_counter()
    for _ in range(warmup):
        once_e2e(True, ready)
    stages.sync()
    warmup_s = time.perf_counter() - started

    timed: dict[str, list[float]] = {name: [] for name in LATENCY_BENCH_STAGES}
    clock = time.perf_counter
    for _ in range(repeats):
        t0 = clock()
        rgb = frames.decode()
        t1 = clock()
        image = resize(rgb)
        t2 = clock()
        prepared, noise = stages.preprocess(image, state)
        stages.sync()
        t3 = clock()
        context = stages.prefix(prepared)
        stages.sync()
        t4 = clock()
        x = stages.expert(context, prepared, noise, steps, mode)
        stages.sync()
        t5 = clock()
        actions = stages.postprocess(x)
        t6 = clock()
        if publisher is not None:
            publisher.publish(actions)
        t7 = clock()
        for name, (a, b) in zip(LATENCY_BENCH_STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4),
                                                       (t4, t5), (t5, t6), (t6, t7))):
            timed[name].append((b - a) * 1e3)
    if publisher is None:
        timed["publish"] = []

    include_frame = frame_prep == "inference"
    e2e: list[float] = []
    for _ in range(repeats):
        start = clock()
        once_e2e(include_frame, ready)
        e2e.append((clock() - start) * 1e3)

    summary = {name: summarize_ms(values) for name, values in timed.items()}
    expert_calls = [value / steps for value in timed["expert"]]
    e2e_summary = summarize_ms(e2e)
    return {
        "steps": steps,
        "e2e_ms_p50": e2e_summary["p50"],
        "e2e_ms_p95": e2e_summary["p95"],
        "e2e_ms_max": e2e_summary["max"],
        "prefix_ms_p50": summary["prefix"]["p50"],
        "expert_ms_p50": summarize_ms(expert_calls)["p50"],
        "expert_total_ms_p50": summary["expert"]["p50"],
        "stages": summary,
        "e2e": e2e_summary,
        "frame_prep": frame_prep,
        "warmup_s": warmup_s,
    }
