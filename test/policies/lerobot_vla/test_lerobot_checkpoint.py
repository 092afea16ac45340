# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Our checkpoints of the LeRobot VLA backends, their LeRobot-format copy, and stock checkpoints.

``phi_s`` must survive every way in and out: our ``save_checkpoint`` / ``load_policy``,
LeRobot's ``from_pretrained`` on ``<checkpoint>/lerobot``, LeRobot's own ``save_pretrained``; a
path that would drop it is refused, and a stock LeRobot checkpoint loads as the teacher.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from safetensors.torch import load_file, save_file
from vla_fixtures import (
    CHUNK,
    MAX_DIM,
    ROBOT,
    STATS,
    STOCK,
    TARGET_TIME_PREFIX,
    lerobot_chunk,
    perturb_target_time,
    raw_batch,
    stock_twin,
    target_time_state,
    vla_options,
)

from snapflow_ros.policies.checkpoint import CheckpointError, load_policy, save_checkpoint
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import TargetTimeDroppedError
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import (
    LEROBOT_DIR,
    load_stock_checkpoint,
    verify_target_time_loaded,
)
from snapflow_ros.policies.lerobot_vla.paligemma import paligemma_backbone_dims
from snapflow_ros.policies.registry import new_policy
from snapflow_ros.snapflow.sampler import predict_action_chunk

# -- checkpoints ----------------------------------------------------------------------------------

def lerobot_class(vla):
    """The ``snapflow_<kind>`` LeRobot policy class, as LeRobot's own factory finds it."""
    return get_policy_class(f"snapflow_{vla.kind}")


def assert_same_target_time(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_save_load_round_trips_target_time_through_lerobot_and_ours(vla):
    policy = vla.policy
    perturb_target_time(policy)
    expected = target_time_state(policy)
    checkpoint = save_checkpoint(policy, vla.root / "run", stage="snapflow", step=7)
    ours = load_policy(checkpoint, expected_robot=ROBOT)
    assert type(ours) is type(policy)
    assert_same_target_time(expected, target_time_state(ours))
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    torch.testing.assert_close(
        predict_action_chunk(ours, batch, num_steps=1, noise=noise),
        predict_action_chunk(policy, batch, num_steps=1, noise=noise), rtol=0, atol=0)
    # The same checkpoint, through LeRobot's API (policy and processors, offline).
    lerobot_dir = checkpoint / LEROBOT_DIR
    loaded = lerobot_class(vla).from_pretrained(lerobot_dir)
    assert_same_target_time(expected, target_time_state(loaded))
    preprocessor, postprocessor = make_pre_post_processors(loaded.config,
                                                           pretrained_path=str(lerobot_dir))
    policy.set_lerobot_num_steps(1)
    loaded.config.num_steps = loaded.config.num_inference_steps = 1
    torch.testing.assert_close(
        lerobot_chunk(loaded, preprocessor, postprocessor, batch, noise),
        lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor, batch,
                      noise), rtol=0, atol=0)
    # LeRobot's save_pretrained -> from_pretrained.
    policy.lerobot_policy.save_pretrained(vla.root / "lerobot_native")
    native = lerobot_class(vla).from_pretrained(vla.root / "lerobot_native")
    assert_same_target_time(expected, target_time_state(native))


def test_loading_a_snapflow_checkpoint_by_a_path_that_drops_target_time_is_detected(vla):
    policy = vla.policy
    perturb_target_time(policy)
    checkpoint = save_checkpoint(policy, vla.root / "drop", stage="snapflow", step=1)
    lerobot_dir = checkpoint / LEROBOT_DIR
    _, stock_cls, module = STOCK[vla.kind]
    # Stock LeRobot class on the SnapFlow checkpoint: refused while it is built.
    with pytest.raises(TargetTimeDroppedError, match="phi_s"):
        stock_cls.from_pretrained(lerobot_dir)
    # The config relabelled as stock: LeRobot loads it silently; the drop is then detected.
    relabelled = vla.root / "relabelled"
    shutil.copytree(lerobot_dir, relabelled, symlinks=False)
    config = json.loads((relabelled / "config.json").read_text())
    config["type"] = vla.kind
    for key in ("target_time_hidden_dim", "lerobot_sampling", "tokenizer_name", "backbone_dims"):
        config.pop(key, None)
    (relabelled / "config.json").write_text(json.dumps(config))
    if module is None:
        stock = stock_cls.from_pretrained(relabelled)
    else:
        with paligemma_backbone_dims(module, policy.lerobot_policy.config):
            stock = stock_cls.from_pretrained(relabelled)
    with pytest.raises(TargetTimeDroppedError, match="drops"):
        verify_target_time_loaded(stock, relabelled)
    with pytest.raises(TargetTimeDroppedError, match="phi_s"):
        load_stock_checkpoint(relabelled)
    # A snapflow checkpoint whose weights lost phi_s: both loaders refuse it.
    stripped = vla.root / "stripped"
    shutil.copytree(lerobot_dir, stripped, symlinks=False)
    weights = load_file(str(stripped / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith(TARGET_TIME_PREFIX)},
              str(stripped / "model.safetensors"))
    with pytest.raises((TargetTimeDroppedError, RuntimeError), match="target_time|phi_s"):
        lerobot_class(vla).from_pretrained(stripped)
    shutil.copy(stripped / "model.safetensors", checkpoint / "model.safetensors")
    info = json.loads((checkpoint / "info.json").read_text())
    info["weights_bytes"] = (checkpoint / "model.safetensors").stat().st_size
    (checkpoint / "info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="phi_s"):
        load_policy(checkpoint)


def test_stock_lerobot_checkpoint_loads_as_the_teacher(vla):
    policy = vla.policy
    stock = stock_twin(vla.kind, policy)
    folder = vla.root / "stock_checkpoint"
    stock.save_pretrained(folder)
    policy.preprocessor.save_pretrained(folder)
    policy.postprocessor.save_pretrained(folder)
    options = vla_options(vla.kind, vla.backbones, pretrained_path=str(folder))
    teacher = new_policy(vla.kind, options, ROBOT, STATS)
    assert all(torch.equal(p, torch.zeros_like(p)) for p in
               (teacher.model.target_time_embedding.out.weight,
                teacher.model.target_time_embedding.out.bias))
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    for steps, mode in ((1, "jump"), (10, "euler")):
        torch.testing.assert_close(
            predict_action_chunk(teacher, batch, num_steps=steps, mode=mode, noise=noise),
            predict_action_chunk(policy, batch, num_steps=steps, mode=mode, noise=noise),
            rtol=0, atol=0)


def lerobot_steps(config: dict) -> int:
    """Euler steps of LeRobot's own sampler in a config mapping (PI0 / PI05 and SmolVLA names)."""
    return int(config.get("num_inference_steps", config.get("num_steps")))


def test_the_lerobot_export_is_self_contained_and_runs_the_one_step_jump(vla):
    policy = vla.policy
    policy.set_lerobot_num_steps(10)  # another test of this module set it to 1
    teacher = save_checkpoint(policy, vla.root / "teacher_export", stage="teacher", step=1)
    teacher_config = json.loads((teacher / LEROBOT_DIR / "config.json").read_text())
    assert lerobot_steps(teacher_config) == 10  # phi_s untrained: the teacher's Euler steps
    perturb_target_time(policy)
    checkpoint = save_checkpoint(policy, vla.root / "export", stage="snapflow", step=3)
    lerobot_dir = checkpoint / LEROBOT_DIR
    assert lerobot_steps(vars(policy.lerobot_policy.config)) == 10  # the live policy unchanged
    assert [p for p in lerobot_dir.rglob("*") if p.is_symlink()] == []
    # Moved away from the checkpoint it still loads: nothing in it points outside.
    moved = vla.root / "moved_export"
    shutil.copytree(lerobot_dir, moved, symlinks=True)
    loaded = lerobot_class(vla).from_pretrained(moved)  # LeRobot's own loader, config as saved
    assert lerobot_steps(vars(loaded.config)) == 1 and loaded.config.lerobot_sampling == "jump"
    preprocessor, postprocessor = make_pre_post_processors(loaded.config,
                                                           pretrained_path=str(moved))
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    ours = predict_action_chunk(policy, batch, num_steps=1, noise=noise)  # our 1-NFE sampler
    theirs = lerobot_chunk(loaded, preprocessor, postprocessor, batch, noise)
    assert not torch.allclose(ours, predict_action_chunk(policy, batch, num_steps=10,
                                                         mode="euler", noise=noise))
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
