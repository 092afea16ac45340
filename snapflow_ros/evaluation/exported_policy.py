# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""An ONNX export folder as offline evaluation scores it: batches in, chunks out, no torch.

:class:`ExportedGraphPolicy` wraps the graphs of
:class:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner` (ONNX Runtime) or
:class:`~snapflow_ros.export.openvino_runner.OpenVinoPolicyRunner` (OpenVINO) so that
:func:`~snapflow_ros.evaluation.offline.evaluate_checkpoints` scores an export beside the
checkpoints, on the same frames and from the same noise: the action error that int8 graphs or
another engine cost is measured where the checkpoint's is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.export.manifest import BATCH_DIM, image_input_name

EXPORT_BACKENDS = ("onnxruntime", "openvino")


class ExportedGraphPolicy:
    """An export folder on ``backend`` in ``precision``, with ``threads`` engine threads.

    ``device`` (cpu, cuda / gpu, auto) is the engine's: ONNX Runtime's execution provider or
    OpenVINO's device. A fixed-batch export (``--batch N``, default 1) runs N frames a call.
    """

    def __init__(self, export_dir: str | Path, backend: str = "onnxruntime",
                 precision: str = "float32", threads: int = 0, device: str = "cpu") -> None:
        if backend == "onnxruntime":
            from snapflow_ros.export.onnx_runner import OnnxPolicyRunner

            self.runner = OnnxPolicyRunner(export_dir, providers=(device,),
                                           intra_op_threads=threads, precision=precision)
        elif backend == "openvino":
            from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

            self.runner = OpenVinoPolicyRunner(export_dir, device=device, threads=threads,
                                               precision=precision)
        else:
            raise ConfigError(f"backend {backend!r}: one of {', '.join(EXPORT_BACKENDS)}")
        self.backend = backend
        self.precision = precision
        manifest = self.runner.manifest
        batch = manifest["graphs"]["one_step"]["inputs"][0]["shape"][0]
        self._fixed_rows = None if batch == BATCH_DIM else int(batch)
        self.chunk_size = int(manifest["chunk_size"])
        self.action_dim = int(manifest["action_dim"])
        self.robot = self.runner.robot

    def checkpoint_info(self) -> dict:
        """What ``read_checkpoint_info`` says of a checkpoint, from the manifest's source."""
        source = self.runner.manifest.get("source_checkpoint") or {}
        return {"checkpoint_dir": self.runner.export_dir,
                "info": {"stage": source.get("stage") or "snapflow", "step": source.get("step")},
                "config": {"policy_type": self.runner.manifest["policy_type"]}}

    def describe(self) -> dict:
        """The result entry's backend fields: engine, precision, where it ran."""
        return {"backend": self.backend, "precision": self.precision,
                "engine_device": self.runner.device}

    def feeds(self, batch: dict) -> dict[str, np.ndarray]:
        """Graph feeds of an evaluation batch (``images`` ``{key: (N, 3, h, w) uint8}``, ...)."""
        feeds = {image_input_name(key): np.ascontiguousarray(_numpy(value))
                 for key, value in batch["images"].items()
                 if key in self.robot.camera_keys}
        feeds["state"] = _numpy(batch["state"]).astype(np.float32)
        if self.robot.environment_state_names:
            feeds["environment_state"] = _numpy(batch["environment_state"]).astype(np.float32)
        return feeds

    def predict(self, batch: dict, *, steps: int, mode: str, noise: Any) -> np.ndarray:
        """Chunks ``(N, H, A)`` float32 in robot units from ``noise`` ``(N, H, D)``."""
        noise = np.ascontiguousarray(_numpy(noise), dtype=np.float32)
        return self._run(self.feeds(batch), noise, steps, mode)

    def predict_samples(self, batch: dict, *, steps: int, mode: str, noise: Any) -> np.ndarray:
        """Chunks ``(N, K, H, A)`` from ``noise`` ``(N, K, H, D)``: each frame repeated K times."""
        noise = _numpy(noise)
        rows, draws = noise.shape[:2]
        feeds = {name: np.repeat(value, draws, axis=0) for name, value in self.feeds(batch).items()}
        flat = np.ascontiguousarray(noise.reshape(rows * draws, *noise.shape[2:]), np.float32)
        chunk = self._run(feeds, flat, steps, mode)
        return chunk.reshape(rows, draws, *chunk.shape[1:])

    def _run(self, feeds: dict, noise: np.ndarray, steps: int, mode: str) -> np.ndarray:
        graphs = self.runner.graphs
        if self._fixed_rows is None:
            return np.asarray(graphs.predict(feeds, noise, steps, mode))
        rows, size = noise.shape[0], self._fixed_rows
        parts = []
        for start in range(0, rows, size):
            # The last slice is filled up with copies of its last row, then cut back.
            index = np.minimum(np.arange(start, start + size), rows - 1)
            chunk = graphs.predict({name: value[index] for name, value in feeds.items()},
                                   noise[index], steps, mode)
            parts.append(np.asarray(chunk)[:min(size, rows - start)])
        return np.concatenate(parts, axis=0)

    def close(self) -> None:
        """Release the engine's sessions or compiled models."""
        self.runner.close()


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
