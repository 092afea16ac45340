# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Dynamic int8 quantisation of exported graphs: weights that cannot overflow int8 kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from snapflow_ros.export import onnx_export  # noqa: E402

WIDTH = 64


def _cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown: treat as a CPU without the overflow
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _matmul_graph(folder: Path) -> np.ndarray:
    """One MatMul (1, W) x (W, W) written as the export's ``expert`` graph; returns W."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    # Same-sign, full-scale weights and large positive activations: the worst case for kernels
    # that add two u8 x s8 products in int16.
    weights = np.abs(rng.normal(1.0, 0.05, size=(WIDTH, WIDTH))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, folder / onnx_export.GRAPH_FILES["expert"])
    return weights


def _int8_error(folder: Path, weights: np.ndarray) -> float:
    target = onnx_export._quantize(folder, "expert", external_data=False)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = np.linspace(0.5, 1.0, WIDTH, dtype=np.float32)[None]
    exact = x @ weights
    (y,) = session.run(None, {"x": x})
    return float(np.abs(y - exact).max() / np.abs(exact).max())


def test_int8_graph_of_a_worst_case_matmul_stays_within_a_percent(tmp_path):
    weights = _matmul_graph(tmp_path)
    assert _int8_error(tmp_path, weights) < 0.01
    assert onnx_export.INT8_REDUCE_RANGE  # the manifest's weight_bits follows it


@pytest.mark.skipif(_cpu_has_vnni(), reason="CPUs with VNNI do not saturate int16 pair sums")
def test_full_range_weights_overflow_on_this_cpu_which_is_why_they_are_reduced(tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(onnx_export, "INT8_REDUCE_RANGE", False)
    weights = _matmul_graph(tmp_path)
    assert _int8_error(tmp_path, weights) > 0.05
