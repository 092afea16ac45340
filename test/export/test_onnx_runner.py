# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""OnnxPolicyRunner: PolicyRunner's interface on ONNX Runtime, no torch; bad folders refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from onnx_fixtures import CAMERAS, CHUNK, ENVIRONMENT, IMAGE_SIZE, JOINTS

from snapflow_ros.export.manifest import MANIFEST_FILE, ExportFolderError
from snapflow_ros.export.onnx_runner import OnnxPolicyRunner, RobotMismatchError
from snapflow_ros.runtime.policy_runner import RUNNER_TIMING_STAGES, policy_batch
from snapflow_ros.snapflow.sampler import predict_action_chunk

pytestmark = pytest.mark.slow
# The onnx extra (setup.py): without it there is nothing to test here.
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Camera images at another size than the export's: the runner resizes them as PolicyRunner does.
OBSERVATION_CODE = textwrap.dedent("""
    import types
    import numpy as np
    pixels = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    observation = types.SimpleNamespace(
        images={"top": pixels, "wrist": pixels[::-1].copy()}, state=np.array([0.2, -0.1, 0.05]),
        environment_state=np.array([0.01, -0.03]), task="")
""")


def _observation():
    scope: dict = {}
    exec(OBSERVATION_CODE, scope)  # noqa: S102 - the same observation as the subprocess builds
    return scope["observation"]


def _torch_chunk(policy, observation, noise, steps, mode):
    batch = policy_batch(policy.robot, observation, torch.device("cpu"))
    return predict_action_chunk(policy, batch, num_steps=steps, mode=mode,
                                noise=torch.from_numpy(noise))[0].numpy()


def test_runner_in_a_process_without_torch_matches_the_torch_policy(exported, reference_policy):
    blocker = textwrap.dedent("""
        import sys
        class NoTorch:
            # torch, LeRobot and transformers cannot be imported in this process at all.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "lerobot", "transformers"):
                    raise ImportError(f"{name} is blocked in this test")
        sys.meta_path.insert(0, NoTorch())
    """)
    code = blocker + OBSERVATION_CODE + textwrap.dedent(f"""
        import json
        from snapflow_ros.export.onnx_runner import OnnxPolicyRunner
        runner = OnnxPolicyRunner({str(exported["folder"])!r}, intra_op_threads=1)
        runner.warmup(iterations=1)
        chunks = {{}}
        for steps, mode in ((1, "jump"), (4, "jump"), (3, "euler")):
            result = runner.infer(observation, steps, mode,
                                  generator=np.random.default_rng(steps))
            chunks[f"{{steps}}_{{mode}}"] = result.actions.tolist()
        runner.close()
        loaded = sorted(m for m in ("torch", "lerobot", "transformers") if m in sys.modules)
        print(json.dumps({{"chunks": chunks, "loaded": loaded,
                          "timings": sorted(result.timings_ms)}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert reply["loaded"] == []
    assert reply["timings"] == sorted(RUNNER_TIMING_STAGES)
    observation = _observation()
    for label, chunk in reply["chunks"].items():
        steps, mode = int(label.split("_")[0]), label.split("_")[1]
        noise = np.random.default_rng(steps).standard_normal((1, CHUNK, len(JOINTS)),
                                                             dtype=np.float32)
        expected = _torch_chunk(reference_policy, observation, noise, steps, mode)
        np.testing.assert_allclose(np.array(chunk), expected, rtol=0, atol=1e-5, err_msg=label)


def test_runner_interface_matches_policy_runner(exported):
    runner = OnnxPolicyRunner(exported["folder"], seed=7, intra_op_threads=1)
    assert runner.action_names == JOINTS and runner.chunk_size == CHUNK
    assert runner.robot.camera_keys == CAMERAS
    assert runner.robot.environment_state_names == ENVIRONMENT
    assert (runner.robot.image_height, runner.robot.image_width) == (IMAGE_SIZE, IMAGE_SIZE)
    assert runner.providers == ["CPUExecutionProvider"]
    warm = runner.warmup(iterations=2, num_steps=2)
    assert warm.actions.shape == (CHUNK, len(JOINTS)) and warm.num_steps == 2
    result = runner.infer(_observation(), 1, "jump")
    assert result.actions.dtype == np.float64 and result.mode == "jump"
    assert set(result.timings_ms) == set(RUNNER_TIMING_STAGES)
    assert all(value >= 0 for value in result.timings_ms.values())
    # Seeded: a second runner with the same seed gives the same chunk; fresh noise differs.
    again = OnnxPolicyRunner(exported["folder"], seed=7).infer(_observation())
    np.testing.assert_array_equal(again.actions, result.actions)
    assert not np.array_equal(runner.infer(_observation()).actions, result.actions)
    with pytest.raises(ValueError, match="no image for camera 'wrist'"):
        runner.infer(types.SimpleNamespace(images={"top": np.zeros((8, 8, 3), np.uint8)},
                                           state=np.zeros(3), environment_state=np.zeros(2)))
    with pytest.raises(ValueError, match="environment_state of shape"):
        runner.infer(types.SimpleNamespace(images=_observation().images, state=np.zeros(3)))
    int8 = OnnxPolicyRunner(exported["folder"], precision="int8", seed=7)
    assert np.all(np.isfinite(int8.infer(_observation()).actions))
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer(_observation())


def test_runner_refuses_a_robot_with_other_joints(exported):
    robot = types.SimpleNamespace(joint_names=JOINTS[:2], action_names=JOINTS[:2],
                                  camera_keys=CAMERAS, environment_state_names=ENVIRONMENT)
    with pytest.raises(RobotMismatchError, match="joint_names: export .* has"):
        OnnxPolicyRunner(exported["folder"], expected_robot=robot)


def test_bad_folders_are_refused_with_a_message_naming_the_problem(exported, tmp_path):
    with pytest.raises(ExportFolderError, match="does not exist"):
        OnnxPolicyRunner(tmp_path / "missing")
    with pytest.raises(ExportFolderError, match="that is a checkpoint: export it"):
        OnnxPolicyRunner(exported["checkpoint"])
    copy = tmp_path / "copy"
    shutil.copytree(exported["folder"], copy)
    (copy / "expert.onnx").write_bytes((copy / "expert.onnx").read_bytes()[:-100])
    with pytest.raises(ExportFolderError, match="expert.onnx: contents differ"):
        OnnxPolicyRunner(copy)
    (copy / "expert.onnx").unlink()
    with pytest.raises(ExportFolderError, match="float32 expert graph missing"):
        OnnxPolicyRunner(copy)
    (copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ExportFolderError, match="not valid JSON"):
        OnnxPolicyRunner(copy)
    with pytest.raises(ExportFolderError, match="one of float32, int8"):
        OnnxPolicyRunner(exported["folder"], precision="float16")
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ExportFolderError, match="has no .*TensorrtExecutionProvider"):
            OnnxPolicyRunner(exported["folder"], providers=("tensorrt",))


def test_runner_config_backend_onnxruntime_loads_the_export_in_the_policy_controller(exported):
    import dataclasses

    from snapflow_ros.config_fields import ConfigError
    from snapflow_ros.runtime.policy_controller import PolicyController, PolicyControllerConfig
    from snapflow_ros.runtime.policy_runner import PolicyRunner, RunnerConfig

    config = RunnerConfig(checkpoint=str(exported["folder"]), backend="onnxruntime",
                          onnx_precision="int8", device="cpu", seed=0)
    runner = PolicyRunner.from_config(config)
    assert isinstance(runner, OnnxPolicyRunner) and runner.precision == "int8"
    assert runner.device == "onnxruntime (CPUExecutionProvider)"
    runner.close()
    with pytest.raises(ConfigError, match="options of the torch backend"):
        PolicyRunner.from_config(dataclasses.replace(config, accelerate="compile"))
    defaults = PolicyControllerConfig()
    controller_config = dataclasses.replace(
        defaults, runner=dataclasses.replace(config, onnx_precision="float32"),
        observation=dataclasses.replace(defaults.observation, camera_keys=CAMERAS),
        scheduler=dataclasses.replace(defaults.scheduler, n_act=CHUNK - 2))
    controller = PolicyController.load(controller_config)
    try:
        assert controller.action_names == JOINTS
        assert controller.config.scheduler.chunk_size == CHUNK
    finally:
        controller.close()
