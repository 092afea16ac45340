# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where phi_s enters SmolVLA: the time half of ``action_time_mlp_in``'s input, not the action half.

``action_time_mlp_in`` reads ``cat[action_emb, time_emb]`` per action token. With phi_s set to a
known constant output, the action half must not move and the time half must move by exactly
that constant, at every token.
"""

import pytest
from vla_fixtures import build_vla, check_phi_s_enters_the_time_half, write_backbones


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return build_vla("smolvla", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_phi_s_is_added_to_the_time_half_of_action_time_mlp_in(policy):
    check_phi_s_enters_the_time_half(policy)
