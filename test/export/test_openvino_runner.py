# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""OpenVinoPolicyRunner: the ONNX export on OpenVINO gives the ONNX Runtime runner's chunks."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest
import torch
from onnx_fixtures import CAMERAS, CHUNK, JOINTS

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.export.onnx_runner import OnnxPolicyRunner, RobotMismatchError
from snapflow_ros.runtime.policy_runner import (
    RUNNER_TIMING_STAGES,
    PolicyRunner,
    RunnerConfig,
    policy_batch,
)
from snapflow_ros.snapflow.sampler import predict_action_chunk

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
CASES = ((1, "jump"), (4, "jump"), (3, "euler"))


def _observation():
    pixels = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    return types.SimpleNamespace(
        images={"top": pixels, "wrist": pixels[::-1].copy()}, state=np.array([0.2, -0.1, 0.05]),
        environment_state=np.array([0.01, -0.03]), task="")


def _noise(seed: int) -> np.ndarray:
    # The runners' own draw for generator=np.random.default_rng(seed).
    return np.random.default_rng(seed).standard_normal((1, CHUNK, len(JOINTS)), dtype=np.float32)


def _torch_chunk(policy, steps, mode, seed):
    batch = policy_batch(policy.robot, _observation(), torch.device("cpu"))
    return predict_action_chunk(policy, batch, num_steps=steps, mode=mode,
                                noise=torch.from_numpy(_noise(seed)))[0].numpy()


@pytest.fixture(scope="module")
def openvino_runner(exported):
    from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

    pytest.importorskip("openvino")
    runner = OpenVinoPolicyRunner(exported["folder"], threads=1, seed=7)
    yield runner
    runner.close()


def test_openvino_matches_onnxruntime_and_torch_in_one_and_k_steps(
        exported, reference_policy, openvino_runner):
    onnxruntime = OnnxPolicyRunner(exported["folder"], intra_op_threads=1)
    for steps, mode in CASES:
        seed = 10 + steps
        ov = openvino_runner.infer(_observation(), steps, mode,
                                   generator=np.random.default_rng(seed))
        ort = onnxruntime.infer(_observation(), steps, mode,
                                generator=np.random.default_rng(seed))
        expected = _torch_chunk(reference_policy, steps, mode, seed)
        label = f"{steps} {mode}"
        np.testing.assert_allclose(ov.actions, ort.actions, rtol=0, atol=2e-5, err_msg=label)
        np.testing.assert_allclose(ov.actions, expected, rtol=0, atol=2e-5, err_msg=label)
        assert (ov.num_steps, ov.mode) == (steps, mode)
    onnxruntime.close()


def test_openvino_runner_has_the_onnx_runner_interface(exported, openvino_runner):
    runner = openvino_runner
    assert runner.action_names == JOINTS and runner.chunk_size == CHUNK
    assert runner.robot.camera_keys == CAMERAS
    assert runner.device == "openvino (CPU, float32)"
    assert runner.providers == ["OpenVINO CPU"]
    warm = runner.warmup(iterations=2, num_steps=2)
    assert warm.actions.shape == (CHUNK, len(JOINTS)) and warm.num_steps == 2
    result = runner.infer(_observation())
    assert result.actions.dtype == np.float64
    assert set(result.timings_ms) == set(RUNNER_TIMING_STAGES)
    assert all(value >= 0 for value in result.timings_ms.values())
    # The runner's stage calls hand out copies: a later call does not overwrite a held chunk.
    graphs = runner.graphs
    feeds = runner.build_batch(_observation())
    first = graphs.predict(feeds, _noise(1))
    kept = first.copy()
    graphs.predict(feeds, _noise(2))
    np.testing.assert_array_equal(first, kept)
    with pytest.raises(ValueError, match="no image for camera 'wrist'"):
        runner.infer(types.SimpleNamespace(images={"top": np.zeros((8, 8, 3), np.uint8)},
                                           state=np.zeros(3), environment_state=np.zeros(2)))
    robot = types.SimpleNamespace(joint_names=JOINTS[:2], action_names=JOINTS[:2],
                                  camera_keys=CAMERAS, environment_state_names=())
    from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

    with pytest.raises(RobotMismatchError, match="joint_names"):
        OpenVinoPolicyRunner(exported["folder"], expected_robot=robot)
    closed = OpenVinoPolicyRunner(exported["folder"])
    closed.close()
    with pytest.raises(RuntimeError, match="OpenVinoPolicyRunner is closed"):
        closed.infer(_observation())


def test_int8_graphs_run_on_openvino_with_onnxruntime_int8_error(
        exported, reference_policy, openvino_runner):
    from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

    ov = OpenVinoPolicyRunner(exported["folder"], precision="int8")
    ort = OnnxPolicyRunner(exported["folder"], precision="int8")
    for steps, mode in CASES:
        expected = _torch_chunk(reference_policy, steps, mode, 3)
        ov_error = np.abs(ov.infer(_observation(), steps, mode,
                                   generator=np.random.default_rng(3)).actions - expected).max()
        ort_error = np.abs(ort.infer(_observation(), steps, mode,
                                     generator=np.random.default_rng(3)).actions - expected).max()
        # Other int8 kernels, other rounding: the same order of error as onnxruntime's, not 0.
        assert 0 < ov_error <= 2 * ort_error + 1e-3, (steps, mode, ov_error, ort_error)
    assert ov.device == "openvino (CPU, int8)"
    ov.close()
    ort.close()


def test_bfloat16_runs_where_the_cpu_has_it_and_is_refused_elsewhere(exported, openvino_runner):
    import openvino

    from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        with pytest.raises(ConfigError, match="CPU has no bf16"):
            OpenVinoPolicyRunner(exported["folder"], precision="bfloat16")
        return
    bf16 = OpenVinoPolicyRunner(exported["folder"], precision="bfloat16")
    for steps, mode in CASES:
        fast = bf16.infer(_observation(), steps, mode, generator=np.random.default_rng(4)).actions
        exact = openvino_runner.infer(_observation(), steps, mode,
                                      generator=np.random.default_rng(4)).actions
        # bf16 keeps 8 mantissa bits: about 1% of these chunks' size (0.5), not identical (the
        # hint took effect). A time encoding computed in bf16 gave 0.36 at 1 step, 0.07 at 3.
        error = np.abs(fast - exact).max()
        assert 0 < error < 0.02, (steps, mode, error)
    bf16.close()


def test_the_time_encoding_is_marked_precise_and_unchanged_in_float32(exported):
    import openvino

    from snapflow_ros.export.openvino_runner import keep_time_encoding_precise

    core = openvino.Core()
    path = str(exported["folder"] / "expert.onnx")
    marked = keep_time_encoding_precise(openvino, core, core.read_model(path))
    ops = {node.get_friendly_name(): node for node in marked.get_ordered_ops()}
    trig = [node for node in ops.values() if node.get_type_name() in ("Sin", "Cos")]
    assert len(trig) == 4  # sin and cos of t and of the target time s
    path_to_trig, pending = set(), list(trig)
    while pending:
        node = pending.pop()
        if node.get_type_name() != "Constant" and node.get_friendly_name() not in path_to_trig:
            path_to_trig.add(node.get_friendly_name())
            pending.extend(port.get_source_output().get_node() for port in node.inputs())
    assert {"t", "s"} <= path_to_trig
    for name in path_to_trig:
        assert "DisablePrecisionConversion_0" in ops[name].get_rt_info(), name
        # The CPU plugin drops the mark when it rewrites an Unsqueeze itself.
        assert ops[name].get_type_name() != "Unsqueeze", name
    unmarked = [name for name, node in ops.items() if name not in path_to_trig
                and node.get_type_name() == "MatMul"]
    assert unmarked and all("DisablePrecisionConversion_0" not in ops[name].get_rt_info()
                            for name in unmarked)
    # In float32 the rewritten graph computes what the original does, bit for bit.
    rng = np.random.default_rng(0)
    feeds = {port.get_any_name(): rng.standard_normal(
        [dim.get_length() if dim.is_static else 2 for dim in port.get_partial_shape()]
    ).astype(np.float32) for port in marked.inputs}
    hint = {"INFERENCE_PRECISION_HINT": "f32"}
    original = core.compile_model(core.read_model(path), "CPU", hint)
    rewritten = core.compile_model(marked, "CPU", hint)
    np.testing.assert_array_equal(original.infer_new_request(feeds)[0],
                                  rewritten.infer_new_request(feeds)[0])


def test_runner_config_backend_openvino_goes_through_policy_runner(exported, openvino_runner):
    from snapflow_ros.export.openvino_runner import OpenVinoPolicyRunner

    config = RunnerConfig(checkpoint=str(exported["folder"]), backend="openvino", device="cpu",
                          seed=0)
    runner = PolicyRunner.from_config(config)
    assert isinstance(runner, OpenVinoPolicyRunner)
    assert runner.device == "openvino (CPU, float32)"
    runner.close()
    with pytest.raises(ConfigError, match="options of the torch backend; the openvino backend"):
        PolicyRunner.from_config(dataclasses.replace(config, inference_dtype="bfloat16"))
    with pytest.raises(ConfigError, match="CUDA GPUs take the torch or onnxruntime backend"):
        PolicyRunner.from_config(dataclasses.replace(config, device="cuda"))


def test_missing_openvino_names_the_pip_line(exported, monkeypatch):
    # None in sys.modules makes `import openvino` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "openvino", None)
    config = RunnerConfig(checkpoint=str(exported["folder"]), backend="openvino", device="cpu")
    with pytest.raises(ConfigError, match=r"pip install 'snapflow_ros\[openvino\]'"):
        PolicyRunner.from_config(config)


def test_bfloat16_is_an_openvino_precision_only():
    with pytest.raises(ConfigError, match="bfloat16 is an option of the openvino backend"):
        RunnerConfig(checkpoint="x", backend="onnxruntime", onnx_precision="bfloat16")
    assert RunnerConfig(backend="openvino", onnx_precision="bfloat16").backend == "openvino"
