# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints, backbones and tokenizers by hub id from a local Hugging Face cache, offline.

The cache is laid out as ``hf download`` leaves it (blobs, a snapshot of links, ``refs/main``)
in a temporary folder; ``HF_HUB_OFFLINE=1`` keeps the network out.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hub_fixtures import SMOLVLM, cache_repo, offline_cache
from vla_fixtures import (
    CHUNK,
    MAX_DIM,
    ROBOT,
    STATS,
    build_vla,
    raw_batch,
    stock_twin,
    vla_options,
    write_backbones,
)

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.checkpoint import load_policy, save_checkpoint
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import PALIGEMMA_TOKENIZER
from snapflow_ros.policies.registry import new_policy
from snapflow_ros.snapflow.sampler import predict_action_chunk


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Tiny stock PI0 and SmolVLA checkpoints naming their backbones by hub id, and those."""
    root = tmp_path_factory.mktemp("published")
    backbones = write_backbones(root / "backbones")
    folders = {}
    for kind, field, hub_id in (("pi0", None, None), ("smolvla", "vlm_model_name", SMOLVLM)):
        policy = build_vla(kind, backbones)
        folder = root / kind
        stock_twin(kind, policy).save_pretrained(folder)
        if field:
            config = json.loads((folder / "config.json").read_text())
            config[field] = hub_id
            (folder / "config.json").write_text(json.dumps(config))
        folders[kind] = (folder, policy)
    return backbones, folders


def hub_options(kind: str, backbones) -> dict:
    """Our options for ``kind`` starting from ``lerobot/<kind>_tiny``, backbones left to it."""
    options = vla_options(kind, backbones, pretrained_path=f"lerobot/{kind}_tiny")
    options.pop("tokenizer_path", None)
    options.pop("vlm_model_name", None)
    return options


@pytest.mark.parametrize("style", ["HF_HUB_CACHE", "HF_HOME"])
@pytest.mark.parametrize("kind", ["pi0", "smolvla"])
def test_a_hub_checkpoint_and_its_backbone_load_from_the_cache_and_travel_on(
        kind, style, published, monkeypatch, tmp_path):
    backbones, folders = published
    folder, source = folders[kind]
    cache = offline_cache(monkeypatch, tmp_path, style)
    cache_repo(cache, f"lerobot/{kind}_tiny", folder)
    if kind == "pi0":
        cache_repo(cache, PALIGEMMA_TOKENIZER, backbones.tokenizer)
    else:
        cache_repo(cache, SMOLVLM, backbones.smolvlm)
    teacher = new_policy(kind, hub_options(kind, backbones), ROBOT, STATS).eval()
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    with torch.no_grad():
        expected = predict_action_chunk(source.eval(), batch, num_steps=2, mode="euler",
                                        noise=noise)
        torch.testing.assert_close(
            predict_action_chunk(teacher, batch, num_steps=2, mode="euler", noise=noise),
            expected)
    checkpoint = save_checkpoint(teacher, tmp_path / "run", stage="teacher", step=1)
    shutil.rmtree(cache)  # the robot has no cache: the checkpoint carries what it needs
    loaded = load_policy(checkpoint, expected_robot=ROBOT)
    with torch.no_grad():
        torch.testing.assert_close(
            predict_action_chunk(loaded, batch, num_steps=2, mode="euler", noise=noise),
            expected)


@pytest.mark.parametrize("kind, missing", [("pi0", PALIGEMMA_TOKENIZER), ("smolvla", SMOLVLM)])
def test_a_missing_backbone_is_named_with_the_command_that_downloads_it(
        kind, missing, published, monkeypatch, tmp_path):
    backbones, folders = published
    cache = offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    cache_repo(cache, f"lerobot/{kind}_tiny", folders[kind][0])
    with pytest.raises(ConfigError, match=f"'{missing}' is not a folder.*hf download {missing}"):
        new_policy(kind, hub_options(kind, backbones), ROBOT, STATS)


def test_a_checkpoint_missing_from_the_cache_is_named_with_the_command(
        published, monkeypatch, tmp_path):
    backbones, _ = published
    offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    options = vla_options("pi0", backbones, pretrained_path="lerobot/pi0_missing")
    with pytest.raises(ConfigError, match="lerobot/pi0_missing: not a folder and not in the "
                                          "Hugging Face cache.*hf download lerobot/pi0_missing"):
        new_policy("pi0", options, ROBOT, STATS)
