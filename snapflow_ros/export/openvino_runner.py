# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Run an ONNX export folder with OpenVINO: the same runner as ONNX Runtime's, other engine.

:class:`OpenVinoPolicyRunner` reads the folder ``snapflow export onnx`` writes (the same graphs
and manifest), compiles each graph with OpenVINO and returns what
:class:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner` returns: the observation's feeds, the
noise, the 1-NFE and k-step sampling and the timings are that runner's code; only the graph
calls differ (:class:`OpenVinoGraphs`). Imports numpy and openvino, not torch.

Precisions: ``float32``; ``int8``, the ``--quantize dynamic`` graphs (onnxruntime's
DynamicQuantizeLinear / MatMulInteger / ConvInteger operators, which OpenVINO's ONNX reader
converts); ``bfloat16``, the float32 graphs with OpenVINO's bf16 inference hint, on a device
whose optimisation capabilities list BF16 (AVX512-BF16 or AMX CPUs). float32 sets the f32 hint
explicitly: on a bf16-capable CPU OpenVINO would otherwise pick bf16 by itself.

In bfloat16 the sinusoidal time encodings stay in float32 (:func:`keep_time_encoding_precise`):
``2 pi t / period`` reaches ~1600 rad for the shortest period, where bf16's 8-bit mantissa
rounds to steps of 8 rad and turns sin / cos into noise (measured: chunk error 0.36 on actions of
size 0.48, against 0.002 with the encoding kept in float32).
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.export.manifest import ExportFolderError, graph_path
from snapflow_ros.export.onnx_runner import OnnxGraphs, OnnxPolicyRunner, check_no_torch_options

OPENVINO_PRECISIONS = ("float32", "int8", "bfloat16")
"""Graph files float32 / int8, or float32 graphs computed in bfloat16."""
INSTALL_HINT = "pip install 'snapflow_ros[openvino]' (or pip install openvino)"
_GRAPH_FILES = {"float32": "float32", "int8": "int8", "bfloat16": "float32"}
_INFERENCE_HINTS = {"float32": "f32", "int8": "f32", "bfloat16": "bf16"}


def import_openvino() -> Any:
    """The ``openvino`` module, or a ConfigError saying how to install it."""
    try:
        import openvino
    except ImportError as exc:
        raise ConfigError(f"the openvino backend needs OpenVINO, which is not installed here: "
                          f"{INSTALL_HINT}") from exc
    return openvino


def keep_time_encoding_precise(openvino: Any, core: Any, model: Any) -> Any:
    """``model`` with the computation feeding its Sin / Cos nodes marked to run in float32.

    OpenVINO's CPU plugin leaves a node in its original precision under a bf16 hint when the node
    carries the ``precise`` runtime attribute. Python cannot create that attribute, so the model
    goes through the IR, whose reader does. The plugin rewrites Unsqueeze into its own Reshape and
    drops the attribute on the way, so the marked Unsqueezes become Reshapes first. Models without
    Sin / Cos come back unchanged.
    """
    precise = {}
    pending = [node for node in model.get_ordered_ops() if node.get_type_name() in ("Sin", "Cos")]
    while pending:
        node = pending.pop()
        name = node.get_friendly_name()
        if name in precise or node.get_type_name() == "Constant":
            continue
        precise[name] = node
        pending.extend(port.get_source_output().get_node() for port in node.inputs())
    if not precise:
        return model
    for node in precise.values():
        if node.get_type_name() == "Unsqueeze":
            _unsqueeze_to_reshape(openvino, node)
    model.validate_nodes_and_infer_types()
    with tempfile.TemporaryDirectory() as folder:
        xml_path, bin_path = Path(folder) / "graph.xml", Path(folder) / "graph.bin"
        openvino.save_model(model, str(xml_path), compress_to_fp16=False)
        tree = ElementTree.parse(xml_path)
        for layer in tree.getroot().iter("layer"):
            if layer.get("name") in precise:
                info = layer.find("rt_info")
                if info is None:
                    info = ElementTree.SubElement(layer, "rt_info")
                ElementTree.SubElement(info, "attribute", {"name": "precise", "version": "0"})
        tree.write(xml_path)
        return core.read_model(str(xml_path), str(bin_path))


def _unsqueeze_to_reshape(openvino: Any, node: Any) -> None:
    """Replace an Unsqueeze whose output has at most one dynamic dimension with a Reshape."""
    shape = node.get_output_partial_shape(0)
    if shape.rank.is_dynamic:
        return
    pattern = [dim.get_length() if dim.is_static else -1 for dim in shape]
    if pattern.count(-1) > 1:
        return
    ops = openvino.opset13
    reshape = ops.reshape(node.input(0).get_source_output(),
                          ops.constant(np.array(pattern, dtype=np.int64)), special_zero=False)
    reshape.set_friendly_name(node.get_friendly_name())
    for target in list(node.output(0).get_target_inputs()):
        target.replace_source_output(reshape.output(0))


def resolve_openvino_device(device: str, available: list[str]) -> str:
    """OpenVINO's device name for ``device`` (``cpu``, ``gpu``: an Intel GPU, or ``auto``).

    ``auto`` is GPU when OpenVINO sees one, else CPU; ``cuda`` and unknown names raise.
    """
    wanted = device.lower()
    if wanted == "auto":
        return "GPU" if any(name.startswith("GPU") for name in available) else "CPU"
    if wanted in ("cpu", "gpu") or wanted.startswith("gpu."):
        name = wanted.upper()
        if not any(have == name or have.startswith(name + ".") for have in available):
            raise ConfigError(f"OpenVINO here has no {name} device (it has "
                              f"{', '.join(available)})")
        return name
    raise ConfigError(f"device {device!r}: the openvino backend runs on cpu, gpu (an Intel GPU) "
                      "or auto (GPU when OpenVINO sees one, else CPU); CUDA GPUs take the torch "
                      "or onnxruntime backend")


class OpenVinoGraphs(OnnxGraphs):
    """An export folder's graphs compiled by OpenVINO: OnnxGraphs' sampling, OpenVINO's calls.

    ``device``: ``cpu``, ``gpu`` or ``auto`` (:func:`resolve_openvino_device`); ``threads``:
    OpenVINO's inference threads (0: its default, one per core); ``precision``: one of
    :data:`OPENVINO_PRECISIONS`. One stream, latency hint: one observation at a time.
    """

    def __init__(self, folder: str | Path, manifest: dict, *, precision: str = "float32",
                 device: str = "cpu", threads: int = 1) -> None:
        openvino = import_openvino()
        if precision not in OPENVINO_PRECISIONS:
            raise ExportFolderError(f"precision {precision!r}: one of "
                                    f"{', '.join(OPENVINO_PRECISIONS)}")
        self.manifest = manifest
        self.precision = precision
        core = openvino.Core()
        self.device = resolve_openvino_device(device, list(core.available_devices))
        capabilities = list(core.get_property(self.device, "OPTIMIZATION_CAPABILITIES"))
        if precision == "bfloat16" and "BF16" not in capabilities:
            raise ConfigError(f"precision bfloat16: OpenVINO's {self.device} has no bf16 "
                              f"(its capabilities: {', '.join(capabilities)}); use float32")
        properties = {"INFERENCE_PRECISION_HINT": _INFERENCE_HINTS[precision],
                      "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if threads > 0 and self.device == "CPU":
            properties["INFERENCE_NUM_THREADS"] = str(int(threads))
        self.requests = {}
        for role in manifest["graphs"]:
            path = graph_path(folder, manifest, role, _GRAPH_FILES[precision])
            try:
                model = core.read_model(str(path))
                if precision == "bfloat16":
                    model = keep_time_encoding_precise(openvino, core, model)
                compiled = core.compile_model(model, self.device, properties)
            except Exception as exc:  # OpenVINO raises RuntimeError and its own types
                hint = (" (OpenVINO does not convert an operator of onnxruntime's dynamic "
                        "quantisation: run the int8 graphs with the onnxruntime backend)"
                        if precision == "int8" else "")
                raise ExportFolderError(f"{path}: OpenVINO cannot compile it: {exc}{hint}"
                                        ) from exc
            self.requests[role] = compiled.create_infer_request()
        self.providers = [f"OpenVINO {self.device}"]
        self._read_names(manifest)

    def _run(self, role: str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # infer() copies its outputs (share_outputs=False): the next call may not overwrite a
        # chunk or context the caller still holds.
        return list(self.requests[role].infer(dict(inputs)).to_tuple())


class OpenVinoPolicyRunner(OnnxPolicyRunner):
    """An export folder on OpenVINO: ``infer(observation) -> InferenceResult``.

    The observations, outputs, timings and errors of
    :class:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner`; ``device`` ``cpu`` / ``gpu`` /
    ``auto``, ``threads`` OpenVINO's inference threads (0: its default), ``precision`` one of
    :data:`OPENVINO_PRECISIONS`.
    """

    def __init__(self, export_dir: str | Path, *, device: str = "cpu", threads: int = 1,
                 precision: str = "float32", expected_robot: Any = None,
                 seed: int | None = None) -> None:
        self._open(export_dir, expected_robot, seed, precision)
        self._graphs = OpenVinoGraphs(self.export_dir, self.manifest, precision=precision,
                                      device=device, threads=threads)

    @classmethod
    def from_config(cls, config: Any) -> OpenVinoPolicyRunner:
        """Load a :class:`~snapflow_ros.runtime.policy_runner.RunnerConfig`'s export folder.

        ``device`` cpu / auto (an Intel GPU when OpenVINO sees one; cuda is refused),
        ``torch_threads`` OpenVINO's threads, ``onnx_precision`` float32 / int8 / bfloat16.
        """
        check_no_torch_options(config)
        return cls(config.checkpoint, device=config.device, threads=config.torch_threads,
                   precision=config.onnx_precision,
                   seed=config.seed if config.seed >= 0 else None)

    @property
    def device(self) -> str:
        """Where the graphs run, for logs: ``openvino (CPU, float32)``."""
        device = self._graphs.device if self._graphs is not None else "closed"
        return f"openvino ({device}, {self.precision})"
