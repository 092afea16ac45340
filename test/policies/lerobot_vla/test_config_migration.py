# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot configs written by older LeRobot releases: removed fields migrated or named.

The first LeRobot PI0 port wrote ``num_steps``, ``resize_imgs_with_padding``, ``proj_width``,
``use_cache``, ``attention_implementation``, ``train_state_proj`` and the Aloha flags, which the
installed LeRobot's ``PI0Config`` no longer has.
"""

from __future__ import annotations

import json

import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from vla_fixtures import (
    ROBOT,
    STATS,
    TARGET_TIME_PREFIX,
    build_vla,
    stock_twin,
    vla_options,
    write_backbones,
)

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.lerobot_vla.building import robot_features
from snapflow_ros.policies.lerobot_vla.config_migration import read_lerobot_config
from snapflow_ros.policies.registry import new_policy

OLD_PI0_FIELDS = {"num_steps": 4, "resize_imgs_with_padding": [32, 32], "proj_width": 1024,
                  "use_cache": True, "attention_implementation": "eager",
                  "train_state_proj": True, "adapt_to_pi_aloha": False,
                  "use_delta_joint_actions_aloha": False}
"""Fields a ``config.json`` of LeRobot's first PI0 port carries that PI0Config lost."""


def write_config(folder, config, *, add=None, drop=()) -> None:
    """``config`` saved as LeRobot saves it, then edited as an older release would have it."""
    config._save_pretrained(folder)
    path = folder / "config.json"
    data = json.loads(path.read_text())
    for key in drop:
        data.pop(key)
    data.update(add or {})
    path.write_text(json.dumps(data))


def old_pi0_config(folder) -> None:
    write_config(folder, PI0Config(**robot_features(ROBOT)), add=OLD_PI0_FIELDS,
                 drop=("num_inference_steps", "image_resolution"))


def test_an_old_pi0_config_is_migrated_where_lerobot_itself_refuses_it(tmp_path):
    old_pi0_config(tmp_path)
    with pytest.raises(Exception, match="num_steps|resize_imgs_with_padding|proj_width"):
        PreTrainedConfig.from_pretrained(tmp_path)  # LeRobot 0.6.1's own reader
    config = read_lerobot_config(tmp_path)
    assert isinstance(config, PI0Config)
    assert config.num_inference_steps == 4 and tuple(config.image_resolution) == (32, 32)
    assert config.input_features.keys() == robot_features(ROBOT)["input_features"].keys()


def test_a_field_still_in_the_config_class_is_left_alone(tmp_path):
    write_config(tmp_path, SmolVLAConfig(num_steps=3, resize_imgs_with_padding=(64, 64),
                                         **robot_features(ROBOT)))
    config = read_lerobot_config(tmp_path)
    assert config.num_steps == 3 and tuple(config.resize_imgs_with_padding) == (64, 64)


@pytest.mark.parametrize("add, message", [
    ({"adapt_to_pi_aloha": True}, r"'adapt_to_pi_aloha' = True is not supported by LeRobot "
                                  r"\S+'s PI0Config \(the Aloha-to-pi joint space"),
    ({"proj_width": 512}, r"'proj_width' = 512 .*action_expert_variant"),
    ({"num_inference_steps": 10}, r"'num_steps' \(4\) was renamed 'num_inference_steps'"),
    ({"fine_tune_vision_encoder": True}, r"'fine_tune_vision_encoder' is not a field of "
                                         r"LeRobot \S+'s PI0Config"),
])
def test_a_field_that_cannot_be_migrated_is_named_with_the_reason(tmp_path, add, message):
    old_pi0_config(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data.update(add)
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        read_lerobot_config(tmp_path)


def test_a_stock_checkpoint_with_an_old_config_loads_as_the_teacher(tmp_path):
    backbones = write_backbones(tmp_path / "backbones")
    policy = build_vla("pi0", backbones)
    folder = tmp_path / "old_pi0"
    stock_twin("pi0", policy).save_pretrained(folder)
    data = json.loads((folder / "config.json").read_text())
    data.pop("num_inference_steps")
    data.update(num_steps=4, use_cache=True, attention_implementation="eager")
    (folder / "config.json").write_text(json.dumps(data))
    options = vla_options("pi0", backbones, pretrained_path=str(folder))
    teacher = new_policy("pi0", options, ROBOT, STATS)
    ours, theirs = teacher.state_dict(), policy.state_dict()
    weights = [k for k in theirs if not k.startswith(TARGET_TIME_PREFIX)]
    assert weights and all(torch.equal(ours[k], theirs[k]) for k in weights)
