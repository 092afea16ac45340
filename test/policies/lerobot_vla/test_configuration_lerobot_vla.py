# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``snapflow_*`` LeRobot configs: found by LeRobot's naming convention, checked, guarded."""

import importlib

import pytest
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import get_policy_class
from lerobot.policies.pi0.modeling_pi0 import PI0Policy

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import TargetTimeDroppedError
from snapflow_ros.policies.pi0.configuration_pi0 import SnapFlowPI0Config
from snapflow_ros.policies.registry import lerobot_policy_types, policy_class


@pytest.mark.parametrize("kind", lerobot_policy_types())
def test_lerobot_finds_each_backends_classes_in_its_own_folder(kind):
    backend = policy_class(kind)
    config_class = PreTrainedConfig.get_choice_class(f"snapflow_{kind}")
    assert config_class.__module__ == f"snapflow_ros.policies.{kind}.configuration_{kind}"
    assert get_policy_class(f"snapflow_{kind}") is backend.lerobot_policy_class
    # LeRobot's processor lookup: make_<type>_pre_post_processors in the sibling processor_*.
    processors = importlib.import_module(config_class.__module__.replace("configuration_",
                                                                         "processor_"))
    assert callable(getattr(processors, f"make_snapflow_{kind}_pre_post_processors"))


def test_snapflow_fields_follow_the_stock_ones_and_are_checked():
    config = SnapFlowPI0Config(target_time_hidden_dim=16, tokenizer_name="/tok")
    names = [f for f in config.__dataclass_fields__]
    assert names[-4:] == ["target_time_hidden_dim", "lerobot_sampling", "tokenizer_name",
                          "backbone_dims"]
    assert config.chunk_size == 50  # the stock PI0 fields and their defaults are all there
    with pytest.raises(ConfigError, match="lerobot_sampling"):
        SnapFlowPI0Config(lerobot_sampling="sideways")
    with pytest.raises(ConfigError, match="target_time_hidden_dim"):
        SnapFlowPI0Config(target_time_hidden_dim=-1)


def test_a_stock_class_building_a_snapflow_config_is_refused_by_name():
    with pytest.raises(TargetTimeDroppedError, match="stock LeRobot PI0.*snapflow_pi0"):
        PI0Policy(SnapFlowPI0Config())
