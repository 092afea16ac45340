# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the training settings: each backend's recipe, and explicit values winning over it."""

from __future__ import annotations

import dataclasses

import pytest

from snapflow_ros.config_fields import config_from_dict
from snapflow_ros.policies.registry import policy_types
from snapflow_ros.training.config import (
    TRAINING_DEFAULTS,
    TrainConfig,
    training_defaults,
)

RECIPE = ("lr", "batch_size", "warmup_steps", "grad_clip", "weight_decay", "min_lr_fraction",
          "ema_decay")


def _recipe(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in RECIPE}


def test_every_registered_policy_type_has_its_own_documented_recipe():
    assert set(TRAINING_DEFAULTS) == set(policy_types())
    assert all(defaults.source for defaults in TRAINING_DEFAULTS.values())
    # The compact policy keeps the values every backend used to get.
    assert _recipe(TrainConfig(steps=3000).for_policy("compact")) == {
        "lr": 3e-4, "batch_size": 32, "warmup_steps": 100, "grad_clip": 1.0,
        "weight_decay": 1e-4, "min_lr_fraction": 0.05, "ema_decay": 0.999}
    # The VLAs: the paper's fine-tuning recipe (lr 2.5e-5, clip 1.0, batch 4).
    for kind in ("smolvla", "pi0", "pi05"):
        defaults = training_defaults(kind)
        assert (defaults.lr, defaults.grad_clip, defaults.batch_size) == (2.5e-5, 1.0, 4), kind
    assert training_defaults("some_plugin_policy") == TRAINING_DEFAULTS["compact"]


@pytest.mark.parametrize("kind", ["pi0", "pi05"])
def test_pi_recipes_match_lerobots_own_optimiser_and_schedule(kind):
    """pi0 / pi0.5: LeRobot's presets are the paper's (openpi's) numbers."""
    module = __import__(f"lerobot.policies.{kind}.configuration_{kind}", fromlist=["_"])
    lerobot = next(cls for name, cls in vars(module).items()
                   if name.endswith("Config") and dataclasses.is_dataclass(cls)
                   and hasattr(cls, "optimizer_lr"))
    fields = {f.name: f.default for f in dataclasses.fields(lerobot)}
    ours = training_defaults(kind)
    assert ours.lr == fields["optimizer_lr"]
    assert ours.grad_clip == fields["optimizer_grad_clip_norm"]
    assert ours.weight_decay == fields["optimizer_weight_decay"]
    assert ours.warmup_steps == fields["scheduler_warmup_steps"]
    assert ours.schedule_steps == fields["scheduler_decay_steps"]
    assert ours.min_lr_fraction == pytest.approx(fields["scheduler_decay_lr"] / ours.lr)


def test_values_the_user_set_are_kept_and_only_unset_ones_take_the_default():
    given = config_from_dict(TrainConfig, {"lr": 3e-4, "grad_clip": 0.0, "steps": 30000})
    resolved = given.for_policy("smolvla")
    assert resolved.lr == 3e-4  # the compact value, given explicitly: not replaced
    assert resolved.grad_clip == 0.0  # 0 (clipping off) is a value, not "unset"
    assert (resolved.batch_size, resolved.warmup_steps) == (4, 1000)
    assert resolved.for_policy("compact") == resolved  # resolved once, for good
    assert resolved.unset_recipe_fields() == ()
    assert set(given.unset_recipe_fields()) == {"batch_size", "weight_decay", "warmup_steps",
                                                "min_lr_fraction", "ema_decay"}


def test_a_vla_run_shorter_than_its_schedule_scales_the_default_warm_up_as_lerobot_does():
    assert TrainConfig(steps=3000).for_policy("pi05").warmup_steps == 100
    assert TrainConfig(steps=60000).for_policy("pi05").warmup_steps == 1000
    assert TrainConfig(steps=3000, warmup_steps=500).for_policy("pi05").warmup_steps == 500
    assert TrainConfig(steps=50).for_policy("compact").warmup_steps == 100


def test_weight_ema_is_on_for_the_compact_policy_and_off_for_the_vlas():
    assert TrainConfig().for_policy("compact").ema_decay == 0.999
    for kind in ("smolvla", "pi0", "pi05"):  # a second copy of a VLA's weights costs memory
        assert TrainConfig().for_policy(kind).ema_decay == 0.0, kind
    assert TrainConfig(ema_decay=0.0).for_policy("compact").ema_decay == 0.0  # off, as asked
    assert TrainConfig(ema_decay=0.99).for_policy("pi05").ema_decay == 0.99
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
