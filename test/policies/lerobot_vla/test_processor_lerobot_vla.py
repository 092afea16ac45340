# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""PI0 / PI05 processors are LeRobot's, tokenising offline with the config's tokenizer."""

import pytest
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.pi0 import processor_pi0
from lerobot.policies.pi05 import processor_pi05
from lerobot.processor import TokenizerProcessorStep
from vla_fixtures import ROBOT, STATS

from snapflow_ros.policies.lerobot_vla.building import robot_features
from snapflow_ros.policies.lerobot_vla.offline_backbones import train_tokenizer
from snapflow_ros.policies.lerobot_vla.processor_lerobot_vla import lerobot_dataset_stats
from snapflow_ros.policies.pi0.configuration_pi0 import SnapFlowPI0Config
from snapflow_ros.policies.pi05.configuration_pi05 import SnapFlowPI05Config

PALIGEMMA = {"pi0": (SnapFlowPI0Config, processor_pi0),
             "pi05": (SnapFlowPI05Config, processor_pi05)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.mark.parametrize("kind", sorted(PALIGEMMA))
def test_the_tokenizer_step_loads_the_local_tokenizer_and_the_factory_is_restored(kind,
                                                                                  tokenizer):
    config_class, lerobot_module = PALIGEMMA[kind]
    config = config_class(tokenizer_name=str(tokenizer), **robot_features(ROBOT))
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=lerobot_dataset_stats(STATS))
    steps = [s for s in preprocessor.steps if isinstance(s, TokenizerProcessorStep)]
    assert [s.tokenizer_name for s in steps] == [str(tokenizer)]  # not the gated hub name
    assert lerobot_module.TokenizerProcessorStep is TokenizerProcessorStep


def test_dataset_stats_are_ours_in_lerobots_layout():
    stats = lerobot_dataset_stats(STATS)
    assert sorted(stats) == ["action", "observation.state"]
    assert stats["action"]["std"].tolist() == pytest.approx(list(STATS.action_std))
    assert stats["observation.state"]["mean"].tolist() == pytest.approx(list(STATS.state_mean))
    assert stats["action"]["q99"].tolist() == pytest.approx(list(STATS.action_q99))
    assert "q01" in stats["observation.state"] and "min" not in stats["action"]  # STATS has none
