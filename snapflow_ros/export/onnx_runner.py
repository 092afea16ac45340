# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Run an ONNX export folder with ONNX Runtime: the PolicyRunner interface without torch.

:class:`OnnxPolicyRunner` takes the observations :class:`~snapflow_ros.runtime.policy_runner.
PolicyRunner` takes and returns the same :class:`~snapflow_ros.runtime.policy_runner.
InferenceResult` (chunk in robot units, per-stage timings). One step runs the fused 1-NFE graph;
``num_steps > 1`` runs the prefix graph once and the expert graph ``num_steps`` times, with the
sampler's grid and step rule (:mod:`snapflow_ros.snapflow.sampler`) in numpy. This module imports
numpy, onnxruntime and torch-free parts of this package only, so a robot computer needs neither
torch, LeRobot nor transformers. Threading as PolicyRunner: calls are serialised by a lock.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.export.manifest import (
    BATCH_DIM,
    PRECISIONS,
    ExportFolderError,
    graph_path,
    image_input_name,
    read_manifest,
)
from snapflow_ros.runtime.image_decoding import resize_for_model
from snapflow_ros.runtime.policy_runner import InferenceResult
from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

EXECUTION_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
"""Short names of the ONNX Runtime execution providers a runner can ask for."""


class RobotMismatchError(ExportFolderError):
    """An export was made for other joints, cameras or environment state than the robot's."""


@dataclasses.dataclass(frozen=True)
class ExportedRobot:
    """The robot interface recorded in a manifest (the fields of ``RobotInterface``)."""

    joint_names: tuple[str, ...]
    action_names: tuple[str, ...]
    camera_keys: tuple[str, ...]
    image_height: int
    image_width: int
    environment_state_names: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportedRobot:
        """From the manifest's ``robot`` mapping."""
        return cls(tuple(data["joint_names"]), tuple(data["action_names"]),
                   tuple(data["camera_keys"]), int(data["image_height"]),
                   int(data["image_width"]), tuple(data.get("environment_state_names", ())))

    def check_matches(self, other: Any, *, what: str = "export") -> None:
        """Raise :class:`RobotMismatchError` naming each name list where ``other`` differs."""
        problems = []
        for label in ("joint_names", "action_names", "camera_keys", "environment_state_names"):
            mine, theirs = tuple(getattr(self, label)), tuple(getattr(other, label, ()) or ())
            if mine != theirs:
                problems.append(f"{label}: {what} has {list(mine)}, robot has {list(theirs)}")
        if problems:
            raise RobotMismatchError(f"{what} does not match the robot: " + "; ".join(problems))


def _session_options(intra_op_threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads > 0:
        options.intra_op_num_threads = int(intra_op_threads)
    # The graphs are sequential: a second pool would only compete with the ROS executor.
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def resolve_providers(providers: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names for ``providers`` (short names or full), installed ones only.

    ``"auto"`` means CUDA then CPU, whichever are installed (TensorRT builds its engines when a
    session starts, minutes for a large graph: only when named). An explicitly named provider
    that this onnxruntime build lacks raises :class:`ExportFolderError` naming the ones it has.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if list(providers) == ["auto"]:
        wanted = [EXECUTION_PROVIDERS[n] for n in ("cuda", "cpu")]
        return [name for name in wanted if name in available]
    resolved = [EXECUTION_PROVIDERS.get(name, name) for name in providers]
    missing = [name for name in resolved if name not in available]
    if missing:
        raise ExportFolderError(f"onnxruntime here has no {', '.join(missing)} (it has "
                                f"{', '.join(available)}); install onnxruntime-gpu for CUDA / "
                                "TensorRT")
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")  # the fallback for nodes a GPU provider skips
    return resolved


def check_no_torch_options(config: Any) -> None:
    """Refuse a RunnerConfig's torch-only options (``accelerate``, ``inference_dtype``)."""
    if config.accelerate != "none" or config.inference_dtype != "float32":
        raise ConfigError(
            f"accelerate={config.accelerate!r} / inference_dtype={config.inference_dtype!r} "
            f"are options of the torch backend; the {config.backend} backend takes "
            "onnx_precision")


class OnnxGraphs:
    """The sessions of one export folder in one precision: the 1-NFE chunk and k-step sampling.

    Inputs are numpy feeds keyed by the manifest's input names (``state``, ``image_<camera>``
    ...), batch first; ``noise`` ``(B, H, D)`` float32. Used by the runner and by the export's
    round-trip check, so both run the exact same sampling code. Another engine reuses it by
    overriding :meth:`_run` (:class:`~snapflow_ros.export.openvino_runner.OpenVinoGraphs`).
    """

    def __init__(self, folder: str | Path, manifest: dict, *, precision: str = "float32",
                 providers: Sequence[str] = ("cpu",), intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ExportFolderError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
        self.manifest = manifest
        self.providers = resolve_providers(providers)
        options = _session_options(intra_op_threads)
        self.sessions = {}
        for role in manifest["graphs"]:
            path = graph_path(folder, manifest, role, precision)
            try:
                self.sessions[role] = ort.InferenceSession(str(path), options,
                                                           providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own unrelated exception types
                raise ExportFolderError(f"{path}: onnxruntime cannot load it: {exc}") from exc
            # A GPU provider whose libraries fail to load is dropped with only a log line.
            dropped = [name for name in self.providers
                       if name not in self.sessions[role].get_providers()]
            if dropped and list(providers) != ["auto"]:
                raise ExportFolderError(
                    f"{path}: onnxruntime could not start {', '.join(dropped)} (its libraries, "
                    "e.g. CUDA, cuDNN or TensorRT, did not load: see onnxruntime's log)")
            self.providers = [name for name in self.providers if name not in dropped]
        self._read_names(manifest)

    def _read_names(self, manifest: dict) -> None:
        graphs = manifest["graphs"]
        self.observation_names = [spec["name"] for spec in graphs["prefix"]["inputs"]]
        self.context_names = [spec["name"] for spec in graphs["prefix"]["outputs"]]

    def _run(self, role: str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs of graph ``role`` for ``inputs``, in the manifest's output order."""
        return self.sessions[role].run(None, dict(inputs))

    def one_step(self, feeds: Mapping[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """SnapFlow's 1-NFE chunk ``(B, H, A)`` in robot units: the fused graph, one call."""
        inputs = {name: feeds[name] for name in self.observation_names}
        inputs["noise"] = noise
        return self._run("one_step", inputs)[0]

    def encode(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The context tensors of an observation (the prefix graph)."""
        return self._run("prefix", {name: feeds[name] for name in self.observation_names})

    def sample(self, context: Sequence[np.ndarray], noise: np.ndarray, num_steps: int,
               mode: str = "jump") -> np.ndarray:
        """Integrate ``noise`` ``(B, H, D)`` to a normalised chunk in ``num_steps`` expert calls.

        The grid ``1 = t_0 > ... > t_k = 0`` and the step ``x <- x - (t_i - t_{i+1}) F`` of
        :func:`snapflow_ros.snapflow.sampler.sample_chunk`; ``s`` is the next grid point
        (``jump``) or ``t`` itself (``euler``).
        """
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        if mode not in SAMPLER_MODES:
            raise ValueError(f"mode must be one of {', '.join(SAMPLER_MODES)}, got {mode!r}")
        inputs = dict(zip(self.context_names, context))
        rows = noise.shape[0]
        grid = [1.0 - i / num_steps for i in range(num_steps)] + [0.0]
        x = noise.astype(np.float32, copy=True)
        for t_now, t_next in zip(grid[:-1], grid[1:]):
            t = np.full((rows,), t_now, dtype=np.float32)
            s = t if mode == "euler" else np.full((rows,), t_next, dtype=np.float32)
            velocity = self._run("expert", dict(inputs, x=x, s=s, t=t))[0]
            # float32 like torch's in-graph step (a float64 step would differ in the last bits).
            x = x - np.float32(t_now - t_next) * velocity
        return x

    def to_robot_actions(self, x: np.ndarray) -> np.ndarray:
        """Normalised chunk ``(B, H, D)`` -> robot units ``(B, H, A)`` (the actions graph)."""
        return self._run("actions", {"x": x})[0]

    def predict(self, feeds: Mapping[str, np.ndarray], noise: np.ndarray, num_steps: int = 1,
                mode: str = "jump") -> np.ndarray:
        """The chunk ``(B, H, A)`` in robot units: one fused call for 1 jump step, else pieces."""
        if num_steps == 1 and mode == "jump":
            return self.one_step(feeds, noise)
        return self.to_robot_actions(self.sample(self.encode(feeds), noise, num_steps, mode))


class OnnxPolicyRunner:
    """An export folder on ONNX Runtime: ``infer(observation) -> InferenceResult``.

    ``providers``: execution providers, short (``cpu``, ``cuda``, ``tensorrt``, or ``auto``) or
    full ONNX Runtime names (a named one that this build lacks or that cannot start raises
    :class:`ExportFolderError`; ``auto`` falls back to the CPU); ``intra_op_threads``: threads
    per graph (0: onnxruntime's default, one per core); ``precision``: ``float32`` or ``int8``
    (a ``--quantize`` export); ``expected_robot`` / ``seed`` as for PolicyRunner (the noise
    comes from numpy's generator, so a seed gives other noise than the torch runner's).
    """

    def __init__(self, export_dir: str | Path, *, providers: Sequence[str] = ("cpu",),
                 intra_op_threads: int = 1, precision: str = "float32",
                 expected_robot: Any = None, seed: int | None = None) -> None:
        self._open(export_dir, expected_robot, seed, precision)
        self._graphs: OnnxGraphs | None = OnnxGraphs(
            self.export_dir, self.manifest, precision=precision, providers=providers,
            intra_op_threads=intra_op_threads)

    def _open(self, export_dir: str | Path, expected_robot: Any, seed: int | None,
              precision: str) -> None:
        """Manifest, robot check, chunk shape, noise and lock: everything but the graphs."""
        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(self.export_dir)
        self.robot = ExportedRobot.from_dict(self.manifest["robot"])
        if expected_robot is not None:
            self.robot.check_matches(expected_robot, what=f"export {self.export_dir}")
        self.chunk_size = int(self.manifest["chunk_size"])
        self.action_dim = int(self.manifest["action_dim"])
        self.precision = precision
        batch = self.manifest["graphs"]["one_step"]["inputs"][0]["shape"][0]
        # A fixed-batch export of N runs one observation as N copies.
        self._rows = 1 if batch == BATCH_DIM else int(batch)
        self._rng = np.random.default_rng(seed if seed is not None and seed >= 0 else None)
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> OnnxPolicyRunner:
        """Load a :class:`~snapflow_ros.runtime.policy_runner.RunnerConfig`'s export folder.

        ``device`` picks the execution providers (cpu; cuda: CUDA; auto: CUDA if installed, CPU),
        ``torch_threads`` the intra-op threads, ``onnx_precision`` the graphs.
        """
        check_no_torch_options(config)
        return cls(config.checkpoint, providers=(config.device,),
                   intra_op_threads=config.torch_threads, precision=config.onnx_precision,
                   seed=config.seed if config.seed >= 0 else None)

    @property
    def device(self) -> str:
        """Where the graphs run, for logs: ``onnxruntime (CPUExecutionProvider)``."""
        return f"onnxruntime ({', '.join(self.providers)})"

    @property
    def action_names(self) -> tuple[str, ...]:
        """Commanded joints, in the order of the chunk's columns."""
        return self.robot.action_names

    @property
    def graphs(self) -> OnnxGraphs:
        """The sessions, for callers that time the stages one by one (``bench latency``)."""
        if self._graphs is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return self._graphs

    @property
    def providers(self) -> list[str]:
        """The ONNX Runtime execution providers the sessions run on, in priority order."""
        return list(self._graphs.providers) if self._graphs is not None else []

    def build_batch(self, observation: Any) -> dict[str, np.ndarray]:
        """The graph feeds of one observation: images resized to the export's size, batch 1.

        ``image_<camera>``: ``(1, 3, h, w)`` uint8, ``state`` ``(1, S)`` float32 and
        ``environment_state`` ``(1, E)`` float32 when the export reads one; a PI05 export also
        gets ``prompt_tokens`` ``(1, L)`` int64 and ``prompt_mask`` ``(1, L)`` bool, its prompt
        built from the state and the observation's task (else the export's).
        """
        robot = self.robot
        task = self.manifest.get("task")
        asked = str(getattr(observation, "task", "") or "")
        state_prompt = self.manifest.get("state_prompt")
        if task is not None and asked and asked != task and not state_prompt:
            # The prompt's tokens are constants of the graphs: another one needs another export.
            raise ValueError(f"the export was made for the task {task!r}, the observation asks "
                             f"for {asked!r}: export again with --task")
        feeds = {}
        for key in robot.camera_keys:
            if key not in observation.images:
                raise ValueError(f"observation has no image for camera '{key}' "
                                 f"(has {sorted(observation.images)})")
            pixels = resize_for_model(observation.images[key], robot.image_height,
                                      robot.image_width)
            feeds[image_input_name(key)] = np.ascontiguousarray(
                np.asarray(pixels, np.uint8).transpose(2, 0, 1)[None])
        state = np.asarray(observation.state, dtype=np.float32)
        if state.shape != (len(robot.joint_names),):
            raise ValueError(f"state of shape {state.shape} for {len(robot.joint_names)} joints")
        feeds["state"] = state[None]
        if robot.environment_state_names:
            size = len(robot.environment_state_names)
            environment = np.asarray(getattr(observation, "environment_state", ()), np.float32)
            if environment.shape != (size,):
                raise ValueError(f"environment_state of shape {environment.shape}, the export "
                                 f"reads {size} values {list(robot.environment_state_names)}")
            feeds["environment_state"] = environment[None]
        if state_prompt:
            feeds.update(self._prompt_feeds(feeds, asked or task or ""))
        if self._rows > 1:
            feeds = {name: np.repeat(value, self._rows, axis=0) for name, value in feeds.items()}
        return feeds

    def _prompt_feeds(self, feeds: Mapping[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
        """PI05: the prompt tokens of the state (joints, then environment state) and task."""
        from snapflow_ros.export.prompt_tokens import StatePromptSpec, StatePromptTokenizer

        tokenizer = getattr(self, "_prompt_tokenizer", None)
        if tokenizer is None:
            tokenizer = self._prompt_tokenizer = StatePromptTokenizer(
                self.export_dir, StatePromptSpec.from_dict(self.manifest["state_prompt"]))
        state = feeds["state"]
        if "environment_state" in feeds:
            state = np.concatenate([state, feeds["environment_state"]], axis=1)
        return tokenizer(state, [task] * len(state))

    def infer(self, observation: Any, num_steps: int = 1, mode: str = "jump",
              *, generator: np.random.Generator | None = None) -> InferenceResult:
        """Predict one chunk ``(H, A)`` for ``observation`` with ``num_steps`` sampler steps.

        ``observation`` has ``images``, ``state`` and ``task`` as
        :class:`~snapflow_ros.runtime.observation_buffer.Observation` has. A VLA export's prompt
        is part of its graphs: an observation asking for another task raises ``ValueError``.
        """
        with self._lock:
            if self._graphs is None:
                raise RuntimeError(f"{type(self).__name__} is closed")
            start = time.perf_counter()
            feeds = self.build_batch(observation)
            rng = generator if generator is not None else self._rng
            noise = rng.standard_normal((1, self.chunk_size, self.action_dim), dtype=np.float32)
            noise = np.repeat(noise, self._rows, axis=0)
            prepared = time.perf_counter()
            chunk = self._graphs.predict(feeds, noise, num_steps, mode)
            sampled = time.perf_counter()
            actions = np.asarray(chunk[0], dtype=np.float64)
            done = time.perf_counter()
        return InferenceResult.from_stages(
            actions, (self.chunk_size, len(self.action_names)), (start, prepared, sampled, done),
            num_steps, mode, source="graph")

    def warmup(self, iterations: int = 2, num_steps: int = 1, mode: str = "jump",
               task: str = "") -> InferenceResult | None:
        """Run ``iterations`` inferences on a blank observation (session arenas, kernel choice).

        Uses its own noise, so a seeded runner's later chunks do not depend on the warm-up.
        """
        robot = self.robot
        blank = np.zeros((robot.image_height, robot.image_width, 3), dtype=np.uint8)
        observation = _BlankObservation(
            images={key: blank for key in robot.camera_keys},
            state=np.zeros(len(robot.joint_names)), task=task,
            environment_state=np.zeros(len(robot.environment_state_names)))
        generator = np.random.default_rng(0)
        result = None
        for _ in range(iterations):
            result = self.infer(observation, num_steps, mode, generator=generator)
        return result

    def close(self) -> None:
        """Release the sessions; :meth:`infer` raises afterwards."""
        with self._lock:
            self._graphs = None


@dataclasses.dataclass(frozen=True)
class _BlankObservation:
    images: dict
    state: np.ndarray
    task: str
    environment_state: np.ndarray
