# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the training loop: learning, exact resume, SnapFlow freezing, stop and callbacks."""

import json

import pytest
import torch
from tiny_task import ReachDataset, build_policy
from torch.utils.data import DataLoader

from snapflow_ros.policies.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_policy,
    load_train_state,
)
from snapflow_ros.training.config import TrainConfig
from snapflow_ros.training.trainer import (
    StepBatchSampler,
    _lr_factor,
    collate_samples,
    evaluate,
    run_training,
)


def quick_config(**changes) -> TrainConfig:
    base = dict(steps=6, batch_size=8, lr=1e-3, warmup_steps=2, val_every=3, checkpoint_every=3,
                keep_checkpoints=5, log_every=1, eval_num_samples=16, device="cpu", seed=3)
    return TrainConfig(**{**base, **changes})


def records(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_collate_stacks_tensors_and_keeps_task_strings(train_set):
    batch = collate_samples([train_set[0], train_set[1], train_set[2]])
    assert batch["images"]["top"].shape == (3, 3, 16, 16)
    assert batch["images"]["top"].dtype == torch.uint8
    assert batch["state"].shape == (3, 2) and batch["action"].shape == (3, 4, 2)
    assert batch["action_is_pad"].dtype == torch.bool
    assert batch["task"] == ["reach", "reach", "reach"]


def test_teacher_training_learns_a_tiny_task(train_set, val_set, tmp_path):
    config = quick_config(steps=150, batch_size=16, lr=3e-3, warmup_steps=10, val_every=0,
                          checkpoint_every=0, log_every=25)
    policy = build_policy(train_set, dropout=0.0)
    loader = DataLoader(val_set, batch_size=16, collate_fn=collate_samples)
    before = evaluate(policy, loader, config, torch.device("cpu"))
    result = run_training(policy, train_set, val_set, config, tmp_path, progress=False)
    assert result.step == 150 and not result.stopped_early
    train_losses = [r["loss"] for r in records(tmp_path, "train")]
    assert train_losses[-1] < 0.5 * train_losses[0]
    # Offline action MSE (robot units) at 10 Euler steps drops far below the untrained model's.
    assert result.val_metrics["val_mse_10"] < 0.25 * before["val_mse_10"]
    assert result.checkpoint == latest_checkpoint(tmp_path)


def test_resumed_run_matches_the_uninterrupted_run_exactly(train_set, val_set, tmp_path):
    config = quick_config()
    straight = build_policy(train_set)
    result_straight = run_training(straight, train_set, val_set, config, tmp_path / "straight",
                                   progress=False)

    interrupted = build_policy(train_set)
    calls = iter(range(100))
    first = run_training(interrupted, train_set, val_set, config, tmp_path / "resumed",
                         progress=False, should_stop=lambda: next(calls) >= 2)
    assert first.stopped_early and first.step == 3
    # A fresh process would rebuild the policy from scratch; resume restores everything.
    restarted = build_policy(train_set, seed=123)
    result_resumed = run_training(restarted, train_set, val_set, config, tmp_path / "resumed",
                                  progress=False, resume=True)
    assert result_resumed.step == 6
    for (name, a), b in zip(straight.state_dict().items(), restarted.state_dict().values()):
        assert torch.equal(a, b), name
    assert result_resumed.loss == result_straight.loss
    straight_losses = [r["loss"] for r in records(tmp_path / "straight", "train")]
    resumed_losses = [r["loss"] for r in records(tmp_path / "resumed", "train")]
    assert resumed_losses == straight_losses
    state = load_train_state(tmp_path / "resumed")
    assert state["step"] == 6 and state["scheduler"]["last_epoch"] == 6


def test_resume_with_nothing_to_resume_starts_fresh(train_set, tmp_path):
    result = run_training(build_policy(train_set), train_set, None, quick_config(steps=2),
                          tmp_path, progress=False, resume=True)
    assert result.step == 2 and latest_checkpoint(tmp_path).name == "step_00000002"


def test_resume_refuses_a_run_of_the_other_stage(train_set, tmp_path):
    run_training(build_policy(train_set), train_set, None, quick_config(steps=2), tmp_path,
                 progress=False)
    with pytest.raises(CheckpointError, match="stage 'teacher'"):
        run_training(build_policy(train_set), train_set, None,
                     quick_config(steps=4, stage="snapflow"), tmp_path, progress=False,
                     resume=True)


def test_snapflow_stage_freezes_the_prefix_and_trains_the_expert(train_set, val_set, tmp_path):
    teacher = build_policy(train_set)
    run_training(teacher, train_set, None, quick_config(steps=4, val_every=0), tmp_path / "t",
                 progress=False)
    student = load_policy(tmp_path / "t")
    prefix_before = [p.detach().clone() for p in student.prefix_parameters()]
    expert_before = student.blocks[0].mlp[0].weight.detach().clone()
    assert torch.count_nonzero(student.target_time_embedding.out.weight) == 0

    config = quick_config(steps=4, stage="snapflow", checkpoint_every=0)
    result = run_training(student, train_set, val_set, config, tmp_path / "s", progress=False)
    for before, after in zip(prefix_before, student.prefix_parameters()):
        assert torch.equal(before, after)
    assert not torch.equal(expert_before, student.blocks[0].mlp[0].weight)
    assert torch.count_nonzero(student.target_time_embedding.out.weight) > 0
    # The caller's policy is left trainable as it was handed over.
    assert all(p.requires_grad for p in student.parameters())
    assert {"val_mse_1", "val_mse_10", "val_mse_euler_1", "val_mse_euler_10",
            "val_mse_p95_1", "val_loss"} <= set(result.val_metrics)
    assert load_train_state(tmp_path / "s")["stage"] == "snapflow"
    assert json.loads((result.checkpoint / "info.json").read_text())["stage"] == "snapflow"


def test_teacher_stage_keeps_phi_s_at_zero(train_set, tmp_path):
    policy = build_policy(train_set)
    run_training(policy, train_set, None, quick_config(steps=3), tmp_path, progress=False)
    assert torch.count_nonzero(policy.target_time_embedding.out.weight) == 0


def test_stop_request_writes_a_checkpoint_and_callbacks_report(train_set, val_set, tmp_path):
    progress, saved = [], []
    result = run_training(
        build_policy(train_set), train_set, val_set, quick_config(steps=50, checkpoint_every=0),
        tmp_path, progress=False, command="snapflow train --steps 50",
        on_progress=progress.append, on_checkpoint=saved.append,
        should_stop=lambda: len(progress) >= 2)
    assert result.stopped_early and result.step == 2
    assert [p["step"] for p in progress] == [1, 2]
    assert {"step", "steps", "loss", "lr", "samples_per_s", "eta_s"} <= set(progress[0])
    assert progress[0]["steps"] == 50 and progress[1]["eta_s"] > 0
    assert saved == [tmp_path / "checkpoints" / "step_00000002"] == [result.checkpoint]
    info = json.loads((result.checkpoint / "info.json").read_text())
    assert info["command"] == "snapflow train --steps 50" and info["step"] == 2
    assert load_train_state(tmp_path)["step"] == 2


def test_metrics_file_has_train_and_validation_records(train_set, val_set, tmp_path):
    run_training(build_policy(train_set), train_set, val_set, quick_config(), tmp_path,
                 progress=False)
    train = records(tmp_path, "train")
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert all(r["lr"] > 0 and r["samples_per_s"] > 0 for r in train)
    val = records(tmp_path, "val")
    assert [r["step"] for r in val] == [3, 6]
    assert all(r["val_mse_1"] > 0 and r["val_mse_10"] > 0 and r["val_samples"] == 16 for r in val)


def test_batches_are_a_function_of_the_step():
    sampler = StepBatchSampler(10, 4, seed=1)
    batches = [b for b, _ in zip(sampler, range(6))]
    # Two full batches per epoch; every index at most once per epoch.
    assert len(set(batches[0] + batches[1])) == 8
    resumed = StepBatchSampler(10, 4, seed=1, start_step=3)
    assert [b for b, _ in zip(resumed, range(3))] == batches[3:6]
    ranks = [next(iter(StepBatchSampler(10, 2, seed=1, rank=r, world_size=2))) for r in (0, 1)]
    assert ranks[0] + ranks[1] == batches[0] and not set(ranks[0]) & set(ranks[1])
    tiny = next(iter(StepBatchSampler(3, 8, seed=0)))  # smaller than a batch: cycled
    assert len(tiny) == 8 and set(tiny) == {0, 1, 2}


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_fraction=0.1)
    factors = [_lr_factor(step, config) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert _lr_factor(100, config) == pytest.approx(0.1)


def test_empty_dataset_is_reported(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        run_training(build_policy(ReachDataset(4)), ReachDataset(0), None, quick_config(),
                     tmp_path, progress=False)
