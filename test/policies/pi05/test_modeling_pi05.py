# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What is PI05's own: the state enters through the prompt (discretised), not the suffix."""

import pytest
import torch
from vla_fixtures import build_vla, raw_batch, write_backbones

TOKENS = "observation.language.tokens"


@pytest.fixture(scope="module")
def pi05(tmp_path_factory):
    return build_vla("pi05", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_the_state_is_written_into_the_prompt_and_the_context_holds_no_state(pi05):
    batch = raw_batch(rows=1)
    other = dict(batch, state=batch["state"] + 0.5)
    with torch.no_grad():
        tokens = pi05.preprocess(batch)[TOKENS]
        assert not torch.equal(tokens, pi05.preprocess(other)[TOKENS])
        context = pi05.encode(batch)
    assert sorted(context) == ["keys", "prefix_pad_masks", "values"]
