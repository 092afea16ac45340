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
    fast = bf16.infer(_observation(), generator=np.random.default_rng(4)).actions
    exact = openvino_runner.infer(_observation(), generator=np.random.default_rng(4)).actions
    # bf16 keeps 8 mantissa bits: close to float32, and not identical (the hint took effect).
    assert 0 < np.abs(fast - exact).max() < 0.05 * 1.2
    bf16.close()


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
