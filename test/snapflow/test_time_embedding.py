# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the sinusoidal time encoding and the target-time embedding ``phi_s``."""

import math

import pytest
import torch
from toy_policies import ToyFlowPolicy, toy_batch

from snapflow_ros.snapflow import (
    SnapFlowConfig,
    TargetTimeEmbedding,
    sinusoidal_time_encoding,
    snapflow_loss,
)


def test_encoding_is_sin_half_then_cos_half_with_geometric_periods():
    t = torch.tensor([0.0, 0.25, 1.0])
    dim, min_period, max_period = 8, 4e-3, 4.0
    encoded = sinusoidal_time_encoding(t, dim, min_period, max_period)
    assert encoded.shape == (3, dim) and encoded.dtype == torch.float32
    periods = [min_period * (max_period / min_period) ** (i / 3) for i in range(4)]
    for row, time in enumerate(t.tolist()):
        for i, period in enumerate(periods):
            angle = 2 * math.pi * time / period
            assert encoded[row, i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert encoded[row, 4 + i].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_encoding_follows_requested_dtype_and_rejects_bad_shapes():
    t = torch.rand(5, dtype=torch.float64)
    assert sinusoidal_time_encoding(t, 6).dtype == torch.float64
    assert sinusoidal_time_encoding(t, 6, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="even"):
        sinusoidal_time_encoding(t, 7)
    with pytest.raises(ValueError, match="shape"):
        sinusoidal_time_encoding(t[:, None], 6)


def test_target_time_embedding_is_exactly_zero_at_init_and_first_layer_is_not():
    torch.manual_seed(0)
    phi_s = TargetTimeEmbedding(encoding_dim=16, out_dim=12, hidden_dim=32)
    s = torch.rand(64)
    out = phi_s(s)
    assert out.shape == (64, 12)
    assert torch.count_nonzero(out) == 0
    assert torch.count_nonzero(phi_s.hidden.weight) > 0
    assert torch.equal(phi_s.forward_encoded(sinusoidal_time_encoding(s, 16)), out)


def _without_phi_s(policy: ToyFlowPolicy) -> ToyFlowPolicy:
    plain = ToyFlowPolicy(chunk_size=policy.chunk_size, num_actions=policy.num_actions,
                          target_time=False)
    missing, unexpected = plain.load_state_dict(policy.state_dict(), strict=False)
    assert not missing and all(key.startswith("phi_s.") for key in unexpected)
    return plain


def test_attaching_phi_s_changes_no_output_bit_for_bit():
    torch.manual_seed(0)
    with_phi = ToyFlowPolicy(chunk_size=3, num_actions=2)
    without_phi = _without_phi_s(with_phi)
    batch = toy_batch(with_phi, 32, generator=torch.Generator().manual_seed(1))
    context = with_phi.encode(batch)
    x = torch.randn(32, 3, 2)
    t = torch.rand(32)
    s = torch.rand(32) * t
    assert torch.equal(with_phi.velocity(x, s, t, context), without_phi.velocity(x, s, t, context))
    # With phi_s at zero the target time is ignored entirely.
    assert torch.equal(with_phi.velocity(x, torch.zeros(32), t, context),
                       with_phi.velocity(x, t, t, context))


def test_phi_s_trains_from_its_zero_init():
    torch.manual_seed(0)
    policy = ToyFlowPolicy(chunk_size=2, num_actions=1)
    for parameter in policy.prefix_parameters():
        parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(policy.trainable_parameters("snapflow"), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    hidden_before = policy.phi_s.hidden.weight.detach().clone()
    s = torch.linspace(0, 1, 11)
    for step in range(2):
        loss, _ = snapflow_loss(policy, toy_batch(policy, 16, generator=generator),
                                SnapFlowConfig(), generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0:
            assert torch.count_nonzero(policy.phi_s(s)) > 0
    # Only the output layer gets a gradient on the first step; both layers learn afterwards.
    assert not torch.equal(policy.phi_s.hidden.weight, hidden_before)
