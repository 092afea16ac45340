# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of self-contained checkpoints: round trip, robot checks, corruption, atomic writes."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from snapflow_ros.policies import checkpoint as checkpoint_module
from snapflow_ros.policies import registry
from snapflow_ros.policies.base import CheckpointMismatchError, RobotInterface
from snapflow_ros.policies.checkpoint import (
    CheckpointError,
    export_checkpoint,
    latest_checkpoint,
    load_policy,
    load_train_state,
    read_checkpoint_info,
    save_checkpoint,
)
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.snapflow.sampler import predict_action_chunk

ROBOT = RobotInterface(joint_names=("shoulder", "elbow"), camera_keys=("top",),
                       image_height=32, image_width=32)


def make_policy(seed: int = 0) -> CompactFlowPolicy:
    torch.manual_seed(seed)
    config = CompactPolicyConfig(chunk_size=4, cnn_channels=(8, 16), hidden_dim=32, num_layers=1,
                                 num_heads=2, num_keypoints=4, time_encoding_dim=16,
                                 target_time_hidden_dim=16)
    rng = np.random.default_rng(seed)
    stats = NormalizationStats.from_arrays(rng.normal(size=(20, 2)), rng.normal(3, 2, (20, 2)))
    policy = CompactFlowPolicy(config, ROBOT, stats)
    with torch.no_grad():  # trained-looking weights, phi_s included
        for parameter in policy.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.1)
    return policy.eval()


def make_batch() -> dict:
    generator = torch.Generator().manual_seed(5)
    return {"images": {"top": torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8,
                                            generator=generator)},
            "state": torch.randn(2, 2, generator=generator)}


def test_round_trip_restores_weights_stats_and_outputs_exactly(tmp_path):
    policy = make_policy()
    path = save_checkpoint(policy, tmp_path, stage="snapflow", step=12, command="train --x")
    loaded = load_policy(path)
    assert isinstance(loaded, CompactFlowPolicy) and not loaded.training
    original, restored = policy.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.normalization_stats() == policy.normalization_stats()
    noise = torch.randn(2, 4, 2)
    for steps in (1, 3):
        assert torch.equal(predict_action_chunk(loaded, make_batch(), num_steps=steps, noise=noise),
                           predict_action_chunk(policy, make_batch(), num_steps=steps, noise=noise))


def test_checkpoint_is_self_describing(tmp_path):
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=3, command="cmd a b")
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "info.json", "model.safetensors", "normalization.json"]
    info = read_checkpoint_info(tmp_path)
    assert info["info"]["stage"] == "teacher" and info["info"]["step"] == 3
    assert info["info"]["command"] == "cmd a b" and info["info"]["created"]
    assert info["config"]["policy_type"] == "compact"
    assert info["config"]["robot"]["joint_names"] == ["shoulder", "elbow"]
    assert info["config"]["chunk_size"] == 4 and info["config"]["action_dim"] == 2
    assert info["normalization"]["action_std"] == pytest.approx(
        make_policy().normalization_stats().to_dict()["action_std"])
    weights = load_file(path / "model.safetensors")
    assert any(k.startswith("target_time_embedding.") for k in weights)
    # The info needs no weights.
    (path / "model.safetensors").unlink()
    assert read_checkpoint_info(path)["info"]["step"] == 3


def test_run_dir_resolves_latest_and_keeps_the_newest(tmp_path):
    policy = make_policy()
    for step in (10, 20, 30):
        save_checkpoint(policy, tmp_path, stage="teacher", step=step, keep=2)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_00000030"
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step_00000020", "step_00000030"]
    assert read_checkpoint_info(tmp_path)["info"]["step"] == 30
    assert latest_checkpoint(tmp_path / "empty") is None


def test_other_robot_raises_mismatch_naming_joint_and_camera(tmp_path):
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=1)
    load_policy(path, expected_robot=ROBOT)  # the same robot loads
    other_joint = RobotInterface(joint_names=("shoulder", "wrist"), camera_keys=("top",),
                                 image_height=32, image_width=32)
    with pytest.raises(CheckpointMismatchError, match="wrist"):
        load_policy(path, expected_robot=other_joint)
    other_camera = RobotInterface(joint_names=("shoulder", "elbow"), camera_keys=("front",),
                                  image_height=32, image_width=32)
    with pytest.raises(CheckpointMismatchError, match="front"):
        load_policy(tmp_path, expected_robot=other_camera)


def test_missing_phi_s_weights_are_named(tmp_path):
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=1)
    weights = path / "model.safetensors"
    tensors = {k: v for k, v in load_file(weights).items()
               if not k.startswith("target_time_embedding.")}
    save_file(tensors, weights)
    info = json.loads((path / "info.json").read_text())
    info["weights_bytes"] = weights.stat().st_size  # as if an older tool wrote it consistently
    (path / "info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError,
                       match=r"target_time_embedding\.out\.weight.*") as error:
        load_policy(path)
    assert "phi_s" in str(error.value) and "model.safetensors" in str(error.value)


@pytest.mark.parametrize("keep_size_record", [True, False])
def test_truncated_weights_give_a_clear_error(tmp_path, keep_size_record):
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=1)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    if not keep_size_record:  # the safetensors reader itself must catch it too
        info = json.loads((path / "info.json").read_text())
        del info["weights_bytes"]
        (path / "info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_policy(path)


def test_missing_and_odd_paths_are_reported(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        load_policy(tmp_path)
    path = save_checkpoint(make_policy(), tmp_path / "run", stage="teacher", step=1)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights missing"):
        load_policy(path)


def test_unknown_policy_type_and_corrupt_config_are_reported(tmp_path):
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=1)
    config = json.loads((path / "config.json").read_text())
    config["policy_type"] = "diffusion_v9"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown policy_type 'diffusion_v9'"):
        load_policy(path)
    (path / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_policy(path)


def test_crash_while_writing_keeps_previous_latest(tmp_path, monkeypatch):
    policy = make_policy()
    save_checkpoint(policy, tmp_path, stage="teacher", step=1)

    def write_half_then_die(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\x00" * 100)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(checkpoint_module, "save_file", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(make_policy(seed=1), tmp_path, stage="teacher", step=2)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step_00000001"
    loaded = load_policy(tmp_path)
    assert torch.equal(loaded.action_out.weight, policy.action_out.weight)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000001"]


def test_hard_kill_leftovers_and_a_dangling_latest_are_survived(tmp_path):
    policy = make_policy()
    save_checkpoint(policy, tmp_path, stage="teacher", step=1)
    save_checkpoint(policy, tmp_path, stage="teacher", step=2)
    # A SIGKILL mid-save leaves a hidden temporary directory; a later save cleans it up.
    leftover = tmp_path / "checkpoints" / ".tmp-step_00000003-abc"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    replaced = tmp_path / "checkpoints" / ".old-step_00000002-abc"  # killed while replacing
    replaced.mkdir()
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    # latest naming a checkpoint that is gone falls back to the newest complete one.
    (tmp_path / "latest").write_text("checkpoints/step_00000099\n")
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    save_checkpoint(policy, tmp_path, stage="teacher", step=3)
    assert not leftover.exists() and not replaced.exists()
    assert latest_checkpoint(tmp_path).name == "step_00000003"


def test_saving_the_same_step_again_replaces_it(tmp_path):
    save_checkpoint(make_policy(seed=0), tmp_path, stage="teacher", step=5)
    newer = make_policy(seed=1)
    save_checkpoint(newer, tmp_path, stage="teacher", step=5)
    assert torch.equal(load_policy(tmp_path).action_out.weight, newer.action_out.weight)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000005"]


def test_train_state_round_trip(tmp_path):
    state = {"step": 7, "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}},
             "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2), None)}}
    path = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=7, train_state=state)
    restored = load_train_state(path)
    assert restored["step"] == 7
    assert torch.equal(restored["optimizer"]["state"][0]["exp_avg"], torch.ones(3))
    assert torch.equal(restored["rng"]["torch"], state["rng"]["torch"])
    bare = save_checkpoint(make_policy(), tmp_path, stage="teacher", step=8)
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        load_train_state(bare)


class PolicyWithExtraFiles(CompactFlowPolicy):
    """A backend that also writes a file of its own format."""

    policy_type = "compact_with_extra"
    loaded_from = None

    def save_extra(self, directory):
        (directory / "extra_format.txt").write_text("hello")

    def load_extra(self, directory):
        type(self).loaded_from = (directory / "extra_format.txt").read_text()


def test_save_and_load_extra_hooks_run_inside_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.POLICY_BACKENDS, "compact_with_extra",
                        registry.PolicyBackend(__name__))
    base = make_policy()
    policy = PolicyWithExtraFiles(base.config, ROBOT, base.normalization_stats())
    path = export_checkpoint(policy, tmp_path / "exported", stage="snapflow", step=0)
    assert (path / "extra_format.txt").read_text() == "hello"
    loaded = load_policy(path)
    assert isinstance(loaded, PolicyWithExtraFiles) and PolicyWithExtraFiles.loaded_from == "hello"


def test_a_replacement_policy_config_must_fit_the_weights(tmp_path):
    path = export_checkpoint(make_policy(), tmp_path / "exported", stage="teacher", step=0)
    recorded = read_checkpoint_info(path)["config"]["policy_config"]
    loaded = load_policy(path, policy_config=dict(recorded, dropout=0.3))
    assert loaded.config.dropout == 0.3  # a setting that keeps the architecture
    with pytest.raises(CheckpointError, match="shape mismatch|missing"):
        load_policy(path, policy_config=dict(recorded, hidden_dim=64))
    with pytest.raises(CheckpointError, match="unknown CompactPolicyConfig option"):
        load_policy(path, policy_config=dict(recorded, no_such_option=1))
