# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What is SmolVLA's own: LeRobot finds its classes by name, and its capture shims."""

import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from vla_fixtures import STATS, build_vla, raw_batch, write_backbones

from snapflow_ros.policies.lerobot_vla.processor_lerobot_vla import lerobot_dataset_stats
from snapflow_ros.policies.smolvla import processor_smolvla
from snapflow_ros.policies.smolvla.configuration_smolvla import SnapFlowSmolVLAConfig
from snapflow_ros.policies.smolvla.modeling_smolvla import SnapFlowSmolVLAPolicy

SHIMMED = ("SmolVLMVisionEmbeddings", "SmolVLMVisionTransformer")


@pytest.fixture(scope="module")
def smolvla(tmp_path_factory):
    return build_vla("smolvla", write_backbones(tmp_path_factory.mktemp("backbones"))).eval()


def test_lerobot_finds_the_config_policy_and_processors_by_their_names(smolvla, monkeypatch):
    assert PreTrainedConfig.get_choice_class("snapflow_smolvla") is SnapFlowSmolVLAConfig
    assert get_policy_class("snapflow_smolvla") is SnapFlowSmolVLAPolicy
    calls = []
    factory = processor_smolvla.make_snapflow_smolvla_pre_post_processors
    monkeypatch.setattr(processor_smolvla, "make_snapflow_smolvla_pre_post_processors",
                        lambda *a, **k: calls.append(1) or factory(*a, **k))
    make_pre_post_processors(smolvla.lerobot_policy.config,
                             dataset_stats=lerobot_dataset_stats(STATS))
    assert calls == [1]


def test_capture_shims_swap_smolvlm_vision_code_without_changing_the_prefix(smolvla):
    batch = raw_batch()
    with torch.no_grad():
        expected = smolvla.encode(batch)
        undo = smolvla.install_capture_shims()
        shimmed = [m for m in smolvla.modules() if type(m).__name__ in SHIMMED]
        assert len(shimmed) == 2 and all("forward" in m.__dict__ for m in shimmed)
        actual = smolvla.encode(batch)
    undo()
    assert not any("forward" in m.__dict__ for m in shimmed)
    assert torch.equal(actual["prefix_pad_masks"], expected["prefix_pad_masks"])
    for key in ("keys", "values"):
        assert all(torch.equal(a, e) for a, e in zip(actual[key], expected[key]))

