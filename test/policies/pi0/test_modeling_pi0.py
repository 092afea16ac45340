# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What is PI0's own: the state reaches the action expert in the suffix, through the context."""

import pytest
import torch
from vla_fixtures import CHUNK, MAX_DIM, build_vla, raw_batch, write_backbones


@pytest.fixture(scope="module")
def pi0(tmp_path_factory):
    return build_vla("pi0", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_the_expert_reads_the_state_from_the_context_not_the_prefix(pi0):
    batch = raw_batch()
    x = torch.randn(3, CHUNK, MAX_DIM)
    t = torch.full((3,), 0.7)
    with torch.no_grad():
        context = pi0.encode(batch)
        assert context["state"].shape == (3, pi0.lerobot_policy.config.max_state_dim)
        moved = dict(context, state=context["state"] + 1.0)  # same prefix cache, other state
        assert not torch.allclose(pi0.velocity(x, t, t, context), pi0.velocity(x, t, t, moved))
