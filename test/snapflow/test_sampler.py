# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the noise draw, the k-step jump / Euler samplers and predict_action_chunk."""

import pytest
import torch
from toy_policies import ToyFlowPolicy, toy_batch

from snapflow_ros.snapflow import SAMPLER_MODES, predict_action_chunk, sample_chunk, sample_noise


@pytest.fixture
def policy() -> ToyFlowPolicy:
    torch.manual_seed(0)
    return ToyFlowPolicy(chunk_size=3, num_actions=2, padded_action_dim=3,
                         action_mean=[1.0, -2.0], action_std=[0.5, 3.0])


@pytest.fixture
def trained_phi_s(policy: ToyFlowPolicy) -> ToyFlowPolicy:
    """The policy with a non-zero phi_s, as after SnapFlow training, so s matters."""
    with torch.no_grad():
        policy.phi_s.out.weight.normal_(generator=torch.Generator().manual_seed(3))
    return policy


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_noise_is_standard_normal_and_reproducible():
    noise = sample_noise((4000, 2, 3), generator=_generator(0))
    assert noise.shape == (4000, 2, 3) and noise.dtype == torch.float32
    assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02
    assert torch.equal(noise, sample_noise((4000, 2, 3), generator=_generator(0)))
    half = sample_noise((4000, 2, 3), generator=_generator(0), dtype=torch.bfloat16)
    assert torch.equal(half, noise.to(torch.bfloat16))


def test_one_step_jump_is_eps_minus_the_average_velocity_from_1_to_0(trained_phi_s):
    policy = trained_phi_s
    context = policy.encode(toy_batch(policy, 5, generator=_generator(1)))
    eps = sample_noise((5, 3, 3), generator=_generator(2))
    ones, zeros = torch.ones(5), torch.zeros(5)
    with torch.no_grad():
        jump = eps - policy.velocity(eps, zeros, ones, context)
        euler = eps - policy.velocity(eps, ones, ones, context)
    assert torch.equal(sample_chunk(policy, context, noise=eps), jump)
    assert torch.equal(sample_chunk(policy, context, noise=eps, mode="euler"), euler)
    assert not torch.equal(jump, euler)


def test_jump_and_euler_coincide_while_phi_s_is_zero(policy):
    context = policy.encode(toy_batch(policy, 5, generator=_generator(1)))
    eps = sample_noise((5, 3, 3), generator=_generator(2))
    for num_steps in (1, 4):
        assert torch.equal(sample_chunk(policy, context, num_steps=num_steps, noise=eps),
                           sample_chunk(policy, context, num_steps=num_steps, noise=eps,
                                        mode="euler"))


@pytest.mark.parametrize("mode", SAMPLER_MODES)
def test_k_step_grid_is_uniform_from_1_to_0(trained_phi_s, mode):
    policy = trained_phi_s
    context = policy.encode(toy_batch(policy, 2, generator=_generator(1)))
    queries = []
    original = policy.velocity

    def recorded(x, s, t, ctx):
        queries.append((s[0].item(), t[0].item()))
        return original(x, s, t, ctx)

    policy.velocity = recorded
    sample_chunk(policy, context, num_steps=4, mode=mode, generator=_generator(2))
    times = [1.0, 0.75, 0.5, 0.25]
    targets = times if mode == "euler" else [0.75, 0.5, 0.25, 0.0]
    assert queries == [pytest.approx((s, t)) for s, t in zip(targets, times)]


def test_k_step_sampling_is_deterministic_given_a_seed(trained_phi_s):
    policy = trained_phi_s
    context = policy.encode(toy_batch(policy, 4, generator=_generator(1)))
    first = sample_chunk(policy, context, num_steps=5, generator=_generator(7))
    again = sample_chunk(policy, context, num_steps=5, generator=_generator(7))
    other = sample_chunk(policy, context, num_steps=5, generator=_generator(8))
    assert first.shape == (4, 3, 3)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_batch_size_comes_from_the_context_or_the_argument(policy):
    context = policy.encode(toy_batch(policy, 4, generator=_generator(1)))
    assert sample_chunk(policy, context, generator=_generator(0)).shape == (4, 3, 3)
    single = policy.select_context(context, torch.tensor([0]))
    assert sample_chunk(policy, single.expand(6, -1), batch_size=6).shape == (6, 3, 3)


def test_samples_are_ordinary_tensors_usable_in_place(policy):
    context = policy.encode(toy_batch(policy, 2, generator=_generator(1)))
    chunk = sample_chunk(policy, context, generator=_generator(0))
    assert not chunk.requires_grad and not chunk.is_inference()
    chunk.clamp_(-1.0, 1.0)  # what a safety layer may do; fails on inference tensors


def test_predict_action_chunk_returns_robot_units(policy):
    batch = toy_batch(policy, 4, generator=_generator(1))
    noise = sample_noise((4, 3, 3), generator=_generator(2))
    actions = predict_action_chunk(policy, batch, num_steps=3, noise=noise)
    expected = policy.to_robot_actions(
        sample_chunk(policy, policy.encode(batch), num_steps=3, noise=noise))
    assert actions.shape == (4, 3, 2)
    assert torch.equal(actions, expected)
    seeded = predict_action_chunk(policy, batch, generator=_generator(5))
    assert torch.equal(seeded, predict_action_chunk(policy, batch, generator=_generator(5)))


def test_predict_action_chunk_encodes_once_for_many_steps(policy):
    batch = toy_batch(policy, 2, generator=_generator(1))
    calls = []
    original = policy.encode
    policy.encode = lambda b: calls.append(1) or original(b)
    predict_action_chunk(policy, batch, num_steps=10, generator=_generator(0))
    assert len(calls) == 1


@pytest.mark.parametrize("bad", [{"num_steps": 0}, {"num_steps": 1.5}, {"num_steps": True},
                                 {"mode": "heun"}])
def test_bad_sampler_arguments_are_rejected(policy, bad):
    context = policy.encode(toy_batch(policy, 1, generator=_generator(1)))
    with pytest.raises(ValueError):
        sample_chunk(policy, context, **bad)


def test_noise_of_the_wrong_shape_is_rejected(policy):
    context = policy.encode(toy_batch(policy, 2, generator=_generator(1)))
    with pytest.raises(ValueError, match="noise must have shape"):
        sample_chunk(policy, context, noise=torch.zeros(2, 3, 2))
