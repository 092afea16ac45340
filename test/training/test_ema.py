# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the weight EMA: the average itself, what validation and checkpoints hold, resume."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_task import build_policy
from torch.utils.data import DataLoader, Subset

from snapflow_ros.policies.checkpoint import latest_checkpoint, load_policy, load_train_state
from snapflow_ros.training.config import TrainConfig
from snapflow_ros.training.ema import WeightEMA, ema_decay_at
from snapflow_ros.training.trainer import collate_samples, evaluate, run_training


def ema_config(**changes) -> TrainConfig:
    base = dict(steps=6, batch_size=8, lr=3e-3, warmup_steps=1, val_every=0, checkpoint_every=3,
                keep_checkpoints=5, log_every=1, eval_num_samples=16, device="cpu", seed=3,
                ema_decay=0.5)
    return TrainConfig(**{**base, **changes})


def trainable_names(policy, stage: str = "teacher") -> list[str]:
    ids = {id(p) for p in policy.trainable_parameters(stage)}
    return [name for name, p in policy.named_parameters() if id(p) in ids]


def test_the_decay_warms_up_to_its_setting():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.999) == pytest.approx(11 / 20)
    assert ema_decay_at(100_000, 0.999) == 0.999


def test_the_average_is_the_hand_computed_ema_of_a_tiny_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    model.register_buffer("scale", torch.ones(2))
    ema = WeightEMA(list(model.named_parameters()), ema_decay=0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    for update in range(15):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).square().sum().backward()
        optimizer.step()
        ema.update()
        decay = min(0.9, (1 + update) / (10 + update))
        for name, p in model.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * p.detach().double()
    averages = ema.state_dict()["averages"]
    for name, p in model.named_parameters():
        assert torch.allclose(averages[name].double(), expected[name], atol=1e-6), name
        assert not torch.allclose(averages[name], p.detach(), atol=1e-4), name
    raw = ema.raw_state()
    with ema.swapped_in():
        assert torch.equal(model.weight.detach(), averages["weight"])
        assert torch.equal(model.scale, torch.ones(2))  # buffers: the model's own
    assert torch.equal(model.weight.detach(), raw["weight"])  # the raw weights, exactly


def test_checkpoints_and_validation_hold_the_ema_weights(train_set, val_set, tmp_path):
    policy = build_policy(train_set)
    names = trainable_names(policy)
    initial = {name: p.detach().double().clone() for name, p in policy.named_parameters()}
    raw_after_step: list[dict[str, torch.Tensor]] = []

    def snapshot(_: dict) -> None:  # after each optimiser step: the raw weights are in place
        raw_after_step.append({name: policy.get_parameter(name).detach().double().clone()
                               for name in names})

    config = ema_config(val_every=6)
    result = run_training(policy, train_set, val_set, config, tmp_path, progress=False,
                          on_progress=snapshot)
    expected = {name: initial[name] for name in names}
    for update, raw in enumerate(raw_after_step):
        decay = ema_decay_at(update, config.ema_decay)
        expected = {name: decay * expected[name] + (1 - decay) * raw[name] for name in names}

    saved = load_policy(result.checkpoint)
    state = load_train_state(result.checkpoint)
    for name in names:
        weight = saved.get_parameter(name).detach()
        assert torch.allclose(weight.double(), expected[name], atol=1e-6), name
        assert torch.equal(state["raw_parameters"][name], raw_after_step[-1][name].float())
        assert torch.equal(state["ema"]["averages"][name], weight)
    moved = [n for n in names if not torch.allclose(saved.get_parameter(n).detach(),
                                                    state["raw_parameters"][n], atol=1e-6)]
    assert len(moved) > len(names) // 2  # the average is not the raw weights
    # The caller's policy ends as its checkpoint; validation measured those same weights.
    for name, value in saved.state_dict().items():
        assert torch.equal(policy.state_dict()[name], value), name
    subset = Subset(val_set, range(config.eval_num_samples))
    loader = DataLoader(subset, batch_size=config.batch_size, collate_fn=collate_samples)
    assert evaluate(saved, loader, config, torch.device("cpu")) == result.val_metrics


def test_ema_off_leaves_training_as_it_was_and_ema_on_leaves_the_raw_weights_alone(
        train_set, tmp_path):
    plain = build_policy(train_set)
    run_training(plain, train_set, None, ema_config(ema_decay=0.0), tmp_path / "plain",
                 progress=False)
    plain_state = load_train_state(tmp_path / "plain")
    assert "ema" not in plain_state and "raw_parameters" not in plain_state
    for name, value in load_policy(tmp_path / "plain").state_dict().items():
        assert torch.equal(plain.state_dict()[name], value), name

    averaged = build_policy(train_set)
    run_training(averaged, train_set, None, ema_config(), tmp_path / "ema", progress=False)
    raw = load_train_state(tmp_path / "ema")["raw_parameters"]
    for name in trainable_names(plain):  # the EMA only watches: the same optimisation
        assert torch.equal(raw[name], plain.get_parameter(name).detach()), name
    assert _losses(tmp_path / "plain") == _losses(tmp_path / "ema")


def _losses(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_resume_with_ema_continues_exactly(train_set, tmp_path):
    config = ema_config()
    straight = build_policy(train_set)
    run_training(straight, train_set, None, config, tmp_path / "straight", progress=False)

    calls = iter(range(100))
    first = run_training(build_policy(train_set), train_set, None, config, tmp_path / "resumed",
                         progress=False, should_stop=lambda: next(calls) >= 2)
    assert first.stopped_early and first.step == 3
    restarted = build_policy(train_set, seed=123)  # a fresh process rebuilds from scratch
    run_training(restarted, train_set, None, config, tmp_path / "resumed", progress=False,
                 resume=True)
    for name, value in straight.state_dict().items():
        assert torch.equal(restarted.state_dict()[name], value), name
    a, b = (load_train_state(latest_checkpoint(tmp_path / run)) for run in ("straight", "resumed"))
    assert a["ema"]["updates"] == b["ema"]["updates"] == 6
    for name, value in a["raw_parameters"].items():
        assert torch.equal(b["raw_parameters"][name], value), name
        assert torch.equal(b["ema"]["averages"][name], a["ema"]["averages"][name]), name


def test_resuming_an_ema_run_without_ema_continues_from_the_raw_weights(train_set, tmp_path):
    plain = build_policy(train_set)
    run_training(plain, train_set, None, ema_config(ema_decay=0.0), tmp_path / "plain",
                 progress=False)
    calls = iter(range(100))
    run_training(build_policy(train_set), train_set, None, ema_config(), tmp_path / "switched",
                 progress=False, should_stop=lambda: next(calls) >= 2)
    switched = build_policy(train_set, seed=7)
    run_training(switched, train_set, None, ema_config(ema_decay=0.0), tmp_path / "switched",
                 progress=False, resume=True)
    for name, value in plain.state_dict().items():
        assert torch.equal(switched.state_dict()[name], value), name


def test_resuming_a_run_without_ema_with_ema_starts_the_average_there(train_set, tmp_path,
                                                                     caplog):
    plain = build_policy(train_set)
    run_training(plain, train_set, None, ema_config(ema_decay=0.0), tmp_path / "plain",
                 progress=False)
    calls = iter(range(100))
    run_training(build_policy(train_set), train_set, None, ema_config(ema_decay=0.0),
                 tmp_path / "switched", progress=False, should_stop=lambda: next(calls) >= 2)
    with caplog.at_level("WARNING", logger="snapflow_ros.training.trainer"):
        run_training(build_policy(train_set, seed=7), train_set, None, ema_config(),
                     tmp_path / "switched", progress=False, resume=True)
    assert "has no weight EMA" in caplog.text
    state = load_train_state(tmp_path / "switched")
    assert state["ema"]["updates"] == 3  # the three steps after the resume
    for name, value in state["raw_parameters"].items():
        assert torch.equal(value, plain.get_parameter(name).detach()), name
