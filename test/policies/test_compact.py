# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the compact flow-matching policy: shapes, phi_s identity, normalisation, freezing."""

import numpy as np
import pytest
import torch

from snapflow_ros.config_fields import ConfigError, config_from_dict
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.snapflow.sampler import predict_action_chunk

ROBOT = RobotInterface(joint_names=("shoulder", "elbow", "gripper"), camera_keys=("top", "wrist"),
                       image_height=32, image_width=32)


def tiny_config(**changes) -> CompactPolicyConfig:
    base = dict(chunk_size=6, cnn_channels=(8, 16), hidden_dim=32, num_layers=2, num_heads=2,
                num_keypoints=4, time_encoding_dim=16, target_time_hidden_dim=16)
    return CompactPolicyConfig(**{**base, **changes})


def tiny_stats() -> NormalizationStats:
    rng = np.random.default_rng(0)
    return NormalizationStats.from_arrays(rng.normal(0, 2, (30, 3)), rng.normal(1, 0.5, (30, 3)))


def make_batch(batch_size: int = 2, chunk: int = 6, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    images = {key: torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8,
                                 generator=generator) for key in ROBOT.camera_keys}
    is_pad = torch.zeros(batch_size, chunk, dtype=torch.bool)
    is_pad[0, -2:] = True
    return {"images": images, "state": torch.randn(batch_size, 3, generator=generator),
            "action": torch.randn(batch_size, chunk, 3, generator=generator),
            "action_is_pad": is_pad, "task": ["pick"] * batch_size}


def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter random values, as a trained model would have (no zero layers)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


@pytest.fixture
def policy() -> CompactFlowPolicy:
    torch.manual_seed(0)
    return CompactFlowPolicy(tiny_config(), ROBOT, tiny_stats()).eval()


def test_shapes_of_context_velocity_and_predicted_chunk(policy):
    batch = make_batch(batch_size=3)
    context = policy.encode(batch)
    # 4 keypoint tokens per camera and one state token.
    assert context["tokens"].shape == (3, 2 * 4 + 1, 32)
    x = torch.randn(3, 6, 3)
    velocity = policy.velocity(x, torch.zeros(3), torch.ones(3), context)
    assert velocity.shape == (3, 6, 3)
    actions = predict_action_chunk(policy, batch, num_steps=2)
    assert actions.shape == (3, 6, 3) and torch.isfinite(actions).all()


def test_grid_tokens_and_other_image_sizes_are_accepted():
    torch.manual_seed(0)
    policy = CompactFlowPolicy(tiny_config(image_tokens="grid", grid_size=2), ROBOT).eval()
    batch = make_batch()
    assert policy.encode(batch)["tokens"].shape == (2, 2 * 4 + 1, 32)
    # A camera delivering another resolution, as floats in [0, 1], is resized to the model's.
    batch["images"]["top"] = torch.rand(2, 3, 48, 64)
    assert policy.encode(batch)["tokens"].shape == (2, 9, 32)


def test_phi_s_at_zero_init_leaves_every_output_unchanged_bit_for_bit(policy):
    randomize_(policy)
    torch.nn.init.zeros_(policy.target_time_embedding.out.weight)
    torch.nn.init.zeros_(policy.target_time_embedding.out.bias)
    generator = torch.Generator().manual_seed(1)
    context = policy.encode(make_batch(batch_size=8))
    x = torch.randn(8, 6, 3, generator=generator)
    t = torch.rand(8, generator=generator)
    s = torch.rand(8, generator=generator) * t
    local = policy.velocity(x, t, t, context)
    with torch.no_grad():
        assert torch.equal(policy.velocity(x, s, t, context), local)
        assert torch.equal(policy.velocity(x, torch.zeros(8), t, context), local)
    # The identity is not vacuous: once phi_s is trained, s changes the output.
    with torch.no_grad():
        policy.target_time_embedding.out.weight.normal_(generator=generator)
    assert not torch.allclose(policy.velocity(x, s, t, context), local)


def test_a_fresh_policy_has_phi_s_at_zero(policy):
    assert torch.count_nonzero(policy.target_time_embedding.out.weight) == 0
    assert torch.count_nonzero(policy.target_time_embedding.out.bias) == 0


def test_action_target_is_normalised_and_masked_past_episode_end(policy):
    batch = make_batch()
    target, mask = policy.normalized_action_target(batch)
    assert target.shape == mask.shape == (2, 6, 3)
    assert torch.equal(mask[0, -2:], torch.zeros(2, 3))
    assert torch.equal(mask[0, :-2], torch.ones(4, 3)) and torch.equal(mask[1], torch.ones(6, 3))
    stats = tiny_stats()
    expected = (batch["action"] - torch.tensor(stats.action_mean)) / torch.tensor(stats.action_std)
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(policy.to_robot_actions(target), batch["action"])


def test_normalisation_stats_live_in_the_weights(policy):
    assert {"state_mean", "state_std", "action_mean", "action_std"} <= set(policy.state_dict())
    # The compact policy normalises with mean / std only: those are what its weights keep.
    stats = tiny_stats()
    mean_std = NormalizationStats(stats.state_mean, stats.state_std, stats.action_mean,
                                  stats.action_std)
    assert policy.normalization_stats() == mean_std


def test_stage_parameter_sets(policy):
    prefix = {id(p) for p in policy.prefix_parameters()}
    assert prefix == {id(p) for p in policy.observation_encoder.parameters()}
    phi_s = {id(p) for p in policy.target_time_embedding.parameters()}
    teacher = {id(p) for p in policy.trainable_parameters("teacher")}
    snapflow = {id(p) for p in policy.trainable_parameters("snapflow")}
    # phi_s must stay zero while the teacher learns, so a snapflow stage starts from the teacher.
    assert not phi_s & teacher and prefix <= teacher
    assert phi_s <= snapflow and not prefix & snapflow
    assert teacher | snapflow == {id(p) for p in policy.parameters()}


def test_random_shift_only_in_training(policy):
    batch = make_batch()
    first = policy.encode(batch)["tokens"]
    assert torch.equal(first, policy.encode(batch)["tokens"])
    policy.train()
    torch.manual_seed(3)
    shifted = [policy.encode(batch)["tokens"] for _ in range(3)]
    assert any(not torch.allclose(first, other) for other in shifted)


def test_missing_camera_is_named(policy):
    batch = make_batch()
    del batch["images"]["wrist"]
    with pytest.raises(KeyError, match="wrist"):
        policy.encode(batch)


def test_wrong_action_width_is_reported(policy):
    batch = make_batch()
    batch["action"] = torch.zeros(2, 6, 5)
    with pytest.raises(ValueError, match=r"\(B, 6, 3\)"):
        policy.normalized_action_target(batch)


@pytest.mark.parametrize("changes, message", [
    ({"hidden_dim": 30, "num_heads": 4}, "must divide"),
    ({"time_encoding_dim": 15}, "even"),
    ({"cnn_channels": ()}, "at least one"),
    ({"image_tokens": "patches"}, "keypoints, grid"),
    ({"dropout": 1.5}, "<= 0.9"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**changes)


def test_config_round_trips_through_its_dict(policy):
    rebuilt = CompactFlowPolicy.from_policy_config(policy.policy_config_dict(), ROBOT, None)
    assert rebuilt.config == policy.config
    with pytest.raises(ConfigError, match="hiden_dim"):
        config_from_dict(CompactPolicyConfig, {"hiden_dim": 3})


def test_stats_must_match_the_robot():
    with pytest.raises(ConfigError, match="2 state"):
        CompactFlowPolicy(tiny_config(), ROBOT, NormalizationStats.identity(2, 3))


ENV_ROBOT = RobotInterface(joint_names=("shoulder", "elbow", "gripper"), camera_keys=("top",),
                           image_height=32, image_width=32,
                           environment_state_names=tuple(f"object_poses/0/{f}" for f in
                                                         ("x", "y", "z", "qx", "qy", "qz", "qw")))


def _env_policy() -> CompactFlowPolicy:
    rng = np.random.default_rng(1)
    stats = NormalizationStats.from_arrays(rng.normal(0, 2, (30, 3)), rng.normal(1, 0.5, (30, 3)),
                                           environment_states=rng.normal(0.3, 0.1, (30, 7)))
    torch.manual_seed(0)
    policy = CompactFlowPolicy(tiny_config(), ENV_ROBOT, stats).eval()
    randomize_(policy)
    return policy


def test_environment_state_is_one_more_context_token_and_changes_the_chunk():
    policy = _env_policy()
    batch = make_batch(batch_size=2)
    del batch["images"]["wrist"]
    batch["environment_state"] = torch.full((2, 7), 0.3)
    noise = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    context = policy.encode(batch)
    assert context["tokens"].shape == (2, 4 + 1 + 1, 32)
    first = predict_action_chunk(policy, batch, num_steps=1, noise=noise)
    batch["environment_state"] = torch.full((2, 7), 0.5)
    moved = predict_action_chunk(policy, batch, num_steps=1, noise=noise)
    assert not torch.allclose(first, moved)


def test_environment_state_missing_or_misshapen_fails_with_its_names():
    policy = _env_policy()
    batch = make_batch(batch_size=2)
    with pytest.raises(KeyError, match="object_poses/0/x"):
        policy.encode(batch)
    batch["environment_state"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\(2, 7\)"):
        policy.encode(batch)


def test_environment_state_stats_travel_in_the_weights(tmp_path):
    from snapflow_ros.policies.checkpoint import load_policy, save_checkpoint

    policy = _env_policy()
    save_checkpoint(policy, tmp_path / "ckpt", stage="teacher", step=1)
    loaded = load_policy(tmp_path / "ckpt")
    assert loaded.robot.environment_state_names == ENV_ROBOT.environment_state_names
    assert loaded.normalization_stats() == policy.normalization_stats()
    with pytest.raises(Exception, match="environment_state_names"):
        load_policy(tmp_path / "ckpt", expected_robot=RobotInterface(
            joint_names=ENV_ROBOT.joint_names, camera_keys=("top",)))


def _prepared_top_images(policy: CompactFlowPolicy, batch: dict) -> torch.Tensor:
    encoder = policy.observation_encoder
    return encoder._prepare_image("top", batch["images"]["top"], torch.device("cpu"))


def test_color_jitter_changes_brightness_and_contrast_per_sample_in_training_only():
    torch.manual_seed(0)
    jittered = CompactFlowPolicy(tiny_config(color_jitter=0.4, random_shift_pixels=0), ROBOT,
                                 tiny_stats())
    batch = make_batch(batch_size=16)
    clean = batch["images"]["top"].float() / 255.0
    jittered.train()
    augmented = _prepared_top_images(jittered, batch)
    assert augmented.shape == clean.shape
    assert 0.0 <= float(augmented.min()) and float(augmented.max()) <= 1.0
    # Every sample's mean (brightness) and spread (contrast) moves, each by its own factor.
    mean_ratio = augmented.mean(dim=(1, 2, 3)) / clean.mean(dim=(1, 2, 3))
    spread_ratio = augmented.std(dim=(1, 2, 3)) / clean.std(dim=(1, 2, 3))
    assert float((mean_ratio - 1).abs().min()) > 1e-3
    assert float(mean_ratio.std()) > 0.05 and float(spread_ratio.std()) > 0.05
    assert float((mean_ratio - 1).abs().max()) <= 0.4 + 1e-4
    # Evaluation (deployment) sees the images unchanged, and the same on every call.
    jittered.eval()
    assert torch.equal(_prepared_top_images(jittered, batch), clean)
    with torch.no_grad():
        first = jittered.encode(batch)["tokens"]
        second = jittered.encode(batch)["tokens"]
    assert torch.equal(first, second)


def test_color_jitter_off_by_default_leaves_training_images_unchanged():
    torch.manual_seed(0)
    policy = CompactFlowPolicy(tiny_config(random_shift_pixels=0), ROBOT, tiny_stats()).train()
    assert policy.config.color_jitter == 0.0
    batch = make_batch(batch_size=4)
    assert torch.equal(_prepared_top_images(policy, batch), batch["images"]["top"].float() / 255)
