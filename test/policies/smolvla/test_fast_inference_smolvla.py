# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SmolVLM's vision code without host syncs gives transformers' outputs bit for bit."""

import pytest
import torch

from snapflow_ros.policies.smolvla.fast_inference_smolvla import install_sync_free_smolvlm


def _tiny_smolvlm_vision():
    transformers = pytest.importorskip("transformers")
    from transformers.models.smolvlm import modeling_smolvlm

    config = transformers.SmolVLMVisionConfig(hidden_size=16, intermediate_size=32,
                                              num_hidden_layers=1, num_attention_heads=2,
                                              patch_size=4, image_size=32)
    torch.manual_seed(0)
    return modeling_smolvlm.SmolVLMVisionTransformer(config).eval()


def test_sync_free_smolvlm_vision_is_exactly_transformers():
    vision = _tiny_smolvlm_vision()
    pixels = torch.randn(2, 3, 32, 32)
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    mask[1, 5:, :] = False  # a padded image: fewer patch rows and columns
    mask[1, :, 6:] = False
    with torch.no_grad():
        embed_expected = vision.embeddings(pixels, mask)
        expected = vision(pixels).last_hidden_state
        undo = install_sync_free_smolvlm(vision)
        assert "forward" in vision.embeddings.__dict__ and "forward" in vision.__dict__
        embed_actual = vision.embeddings(pixels, mask)
        actual = vision(pixels).last_hidden_state
    assert torch.equal(embed_actual, embed_expected)
    assert torch.equal(actual, expected)
    undo()
    assert "forward" not in vision.embeddings.__dict__ and "forward" not in vision.__dict__
