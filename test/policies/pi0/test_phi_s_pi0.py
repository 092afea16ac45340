# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where phi_s enters PI0: the time half of ``action_time_mlp_in``'s input, not the action half.

``action_time_mlp_in`` reads ``cat[action_emb, time_emb]`` per action token. With phi_s set to a
known constant output, the action half must not move and the time half must move by exactly
that constant, at every token.
"""

import pytest
import torch
from vla_fixtures import build_vla, raw_batch, write_backbones


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return build_vla("pi0", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_phi_s_is_added_to_the_time_half_of_action_time_mlp_in(policy):
    core = policy.lerobot_policy.model
    width = core.action_in_proj.out_features
    phi_s = core.target_time_embedding
    inputs = []
    hook = core.action_time_mlp_in.register_forward_hook(
        lambda module, args, out: inputs.append(args[0].detach().clone()))
    constant = torch.linspace(-1.0, 1.0, width)
    try:
        with torch.no_grad():
            context = policy.encode(raw_batch(rows=2))
            x = torch.randn(2, policy.chunk_size, policy.action_dim,
                            generator=torch.Generator().manual_seed(0))
            t, s = torch.tensor([0.7, 1.0]), torch.tensor([0.2, 0.0])
            before = policy.velocity(x, s, t, context)
            phi_s.out.bias.copy_(constant)  # phi_s(s) = constant for every s
            after = policy.velocity(x, s, t, context)
    finally:
        hook.remove()
        with torch.no_grad():
            phi_s.out.bias.zero_()
    plain, shifted = inputs
    assert plain.shape[-1] == 2 * width
    assert torch.equal(shifted[..., :width], plain[..., :width])  # the action half
    moved = shifted[..., width:] - plain[..., width:]
    assert torch.allclose(moved, constant.expand_as(moved), atol=1e-5)
    assert not torch.allclose(after, before)  # and the velocity sees it
