# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where phi_s enters PI05: the adaRMS conditioning vector, not the action tokens.

PI05's ``embed_suffix`` returns the action tokens and the adaRMS condition (the time MLP's
output) that modulates every expert layer. With phi_s set to a known constant output, the tokens
must not move and the condition must move by exactly that constant.
"""

import pytest
import torch
from vla_fixtures import build_vla, raw_batch, write_backbones


@pytest.fixture(scope="module")
def pi05(tmp_path_factory):
    return build_vla("pi05", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_phi_s_is_added_to_the_adarms_condition_not_to_the_action_tokens(pi05):
    core = pi05.lerobot_policy.model
    phi_s = core.target_time_embedding
    outputs = []
    injected = core.__dict__["embed_suffix"]  # what LeRobot's denoise_step calls

    def recorded(*args, **kwargs):
        out = injected(*args, **kwargs)
        outputs.append(tuple(o.detach().clone() if isinstance(o, torch.Tensor) else o
                             for o in out))
        return out

    core.embed_suffix = recorded
    constant = torch.linspace(-1.0, 1.0, core.time_mlp_out.out_features)
    try:
        with torch.no_grad():
            context = pi05.encode(raw_batch(rows=2))
            x = torch.randn(2, pi05.chunk_size, pi05.action_dim,
                            generator=torch.Generator().manual_seed(0))
            t, s = torch.tensor([0.7, 1.0]), torch.tensor([0.2, 0.0])
            before = pi05.velocity(x, s, t, context)
            phi_s.out.bias.copy_(constant)  # phi_s(s) = constant for every s
            after = pi05.velocity(x, s, t, context)
    finally:
        core.embed_suffix = injected
        with torch.no_grad():
            phi_s.out.bias.zero_()
    (tokens, _, _, condition), (tokens_after, _, _, condition_after) = outputs
    assert torch.equal(tokens_after, tokens)  # the action tokens
    moved = condition_after - condition
    assert moved.shape == (2, constant.numel())
    assert torch.allclose(moved, constant.expand_as(moved), atol=1e-5)
    assert not torch.allclose(after, before)  # and the velocity sees it
