# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the policy runner on a tiny real checkpoint, and of the whole ROS-free pipeline."""

import numpy as np
import pytest
import torch

from snapflow_ros.config_fields import ConfigError, replace_config
from snapflow_ros.devices import resolve_device
from snapflow_ros.policies.base import CheckpointMismatchError, RobotInterface
from snapflow_ros.policies.checkpoint import export_checkpoint
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.runtime.image_decoding import resize_for_model
from snapflow_ros.runtime.observation_buffer import Observation
from snapflow_ros.runtime.policy_controller import (
    LatencyRecord,
    PolicyController,
    PolicyControllerConfig,
)
from snapflow_ros.runtime.policy_runner import PolicyRunner, RunnerConfig
from snapflow_ros.snapflow.sampler import predict_action_chunk

ROBOT = RobotInterface(joint_names=("shoulder", "elbow"), camera_keys=("top",),
                       image_height=16, image_width=16)
CHUNK = 6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = CompactPolicyConfig(chunk_size=CHUNK, cnn_channels=(4, 8), hidden_dim=16,
                                 num_layers=1, num_heads=2, num_keypoints=2,
                                 time_encoding_dim=8, target_time_hidden_dim=8)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(20, 2)), rng.normal(1, 0.5, (20, 2)))
    policy = CompactFlowPolicy(config, ROBOT, stats)
    with torch.no_grad():  # trained-looking weights: outputs depend on the inputs
        for parameter in policy.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.2)
    path = tmp_path_factory.mktemp("ckpt") / "policy"
    export_checkpoint(policy, path, stage="snapflow", step=1)
    return path


def observation(seed=0, size=(24, 32), task="pick"):
    rng = np.random.default_rng(seed)
    return Observation(images={"top": rng.integers(0, 256, (*size, 3), dtype=np.uint8)},
                       state=rng.normal(size=2), measured_position=np.zeros(2), task=task,
                       time=0.0, stamps={}, ages={})


def test_infer_returns_a_robot_unit_chunk_and_stage_timings(checkpoint):
    runner = PolicyRunner(checkpoint, device="cpu")
    assert runner.chunk_size == CHUNK and runner.action_names == ("shoulder", "elbow")
    result = runner.infer(observation())
    assert result.actions.shape == (CHUNK, 2) and result.actions.dtype == np.float64
    assert np.all(np.isfinite(result.actions))
    assert set(result.timings_ms) == {"preprocess", "model", "postprocess"}
    assert all(value >= 0 for value in result.timings_ms.values())
    assert result.num_steps == 1 and result.mode == "jump"


def test_batch_is_what_the_policy_expects_and_matches_a_direct_call(checkpoint):
    runner = PolicyRunner(checkpoint, device="cpu", seed=3)
    obs = observation(size=(24, 32))
    batch = runner.build_batch(obs)
    image = batch["images"]["top"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (1, 3, 16, 16)
    assert batch["state"].dtype == torch.float32 and tuple(batch["state"].shape) == (1, 2)
    assert batch["task"] == ["pick"]
    expected = torch.from_numpy(resize_for_model(obs.images["top"], 16, 16)).permute(2, 0, 1)
    assert torch.equal(image[0], expected)
    direct = predict_action_chunk(runner.policy, batch, num_steps=2, mode="euler",
                                  generator=torch.Generator().manual_seed(3))
    result = runner.infer(obs, num_steps=2, mode="euler")
    np.testing.assert_allclose(result.actions, direct[0].double().numpy(), rtol=1e-6)


def test_seeded_runs_are_reproducible_and_independent_of_warmup(checkpoint):
    first = PolicyRunner(checkpoint, device="cpu", seed=7)
    second = PolicyRunner(checkpoint, device="cpu", seed=7)
    assert second.warmup(iterations=2) is not None
    np.testing.assert_array_equal(first.infer(observation()).actions,
                                  second.infer(observation()).actions)
    assert not np.array_equal(first.infer(observation()).actions,
                              first.infer(observation(seed=5)).actions)


def test_steps_and_sampler_mode_reach_the_sampler(checkpoint):
    runner = PolicyRunner(checkpoint, device="cpu", seed=1)
    one = runner.infer(observation(), generator=torch.Generator().manual_seed(1))
    four = runner.infer(observation(), num_steps=4, mode="euler",
                        generator=torch.Generator().manual_seed(1))
    assert four.num_steps == 4 and not np.allclose(one.actions, four.actions)
    with pytest.raises(ValueError, match="mode"):
        runner.infer(observation(), mode="heun")


def test_checkpoint_for_another_robot_is_refused_by_name(checkpoint):
    other = RobotInterface(joint_names=("shoulder", "wrist"), camera_keys=("top",),
                           image_height=16, image_width=16)
    with pytest.raises(CheckpointMismatchError, match="wrist"):
        PolicyRunner(checkpoint, device="cpu", expected_robot=other)


def test_bad_observations_raise_clear_errors(checkpoint):
    runner = PolicyRunner(checkpoint, device="cpu")
    obs = observation()
    with pytest.raises(ValueError, match="no image for camera 'top'"):
        runner.infer(Observation({}, obs.state, obs.measured_position, "", 0.0, {}, {}))
    with pytest.raises(ValueError, match="3 joints|for 2 joints"):
        runner.infer(Observation(obs.images, np.zeros(3), obs.measured_position, "", 0.0, {},
                                 {}))


def test_close_frees_the_model(checkpoint):
    runner = PolicyRunner(checkpoint, device="cpu")
    runner.close()
    assert runner.policy is None
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer(observation())


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


def test_runner_from_config_needs_a_checkpoint_and_passes_the_seed(checkpoint):
    with pytest.raises(ConfigError, match="'checkpoint' is empty"):
        PolicyRunner.from_config(RunnerConfig())
    config = RunnerConfig(checkpoint=str(checkpoint), device="cpu", seed=3)
    first, second = PolicyRunner.from_config(config), PolicyRunner.from_config(config)
    np.testing.assert_array_equal(first.infer(observation()).actions,
                                  second.infer(observation()).actions)


def test_messages_to_safe_commands_end_to_end(checkpoint):
    """Raw joint states and images in; guarded, timed commands out, as the node runs it."""
    config = replace_config(PolicyControllerConfig(
        runner=RunnerConfig(checkpoint=str(checkpoint), device="cpu", seed=0)),
        output_mode="stream", n_act=4, prefetch_threshold=2, control_rate_hz=50.0,
        limit_joint_names=("shoulder",), lower_limits=(-0.5,), upper_limits=(0.5,),
        max_delta_per_tick=(0.05,), first_command_mode="ramp", first_command_max_distance=0.1,
        wait_for_fresh_image=False)
    clock = {"now": 0.0}
    controller = PolicyController.load(config, clock=lambda: clock["now"],
                                       wait=lambda timeout, event: None)
    assert controller.config.scheduler.chunk_size == CHUNK
    assert controller.config.observation.joint_names == ROBOT.joint_names
    controller.activate()
    period = config.scheduler.control_period_s
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    commands, outputs = [], []
    for tick in range(40):
        clock["now"] = tick * period
        assert controller.add_joint_state(["elbow", "shoulder", "gripper"], [0.1, 0.0, 1.0])
        assert controller.add_raw_image("top", "bgr8", 20, 30, 90, rgb.tobytes())
        controller.step(outputs.append)
        command = controller.control_tick()
        if command is not None:
            ((time_from_start, action),) = command.points
            assert time_from_start == pytest.approx(period)
            commands.append(action)
    commands = np.array(commands)
    assert len(commands) == 40
    assert np.all(np.abs(commands[:, 0]) <= 0.5)
    assert np.all(np.abs(np.diff(commands, axis=0)) <= 0.05 + 1e-12)
    assert np.all(np.abs(commands[0] - [0.0, 0.1]) <= 0.05 + 1e-12)
    diagnostics = controller.diagnostics()
    assert diagnostics["latency_ms"]["model"]["count"] == diagnostics["chunks_produced"] >= 10
    assert sum(isinstance(o, LatencyRecord) for o in outputs) == diagnostics["chunks_produced"]
    controller.close()
    assert controller._runner.policy is None
