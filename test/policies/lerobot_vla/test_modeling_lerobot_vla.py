# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What every LeRobot VLA backend (SmolVLA, PI0, PI05) does as a SnapFlow policy, offline.

Each backend is built once per module with tiny backbones (``vla_fixtures``) and reset to its
initial weights before every test (``conftest``).
"""

from __future__ import annotations

import threading

import pytest
import torch
from vla_fixtures import (
    CHUNK,
    MAX_DIM,
    STATS,
    build_vla,
    lerobot_chunk,
    perturb_target_time,
    raw_batch,
    stock_twin,
)

from snapflow_ros.snapflow.objective import SnapFlowConfig, snapflow_loss
from snapflow_ros.snapflow.sampler import predict_action_chunk

# -- phi_s ----------------------------------------------------------------------------------------

def test_attaching_target_time_leaves_every_output_bit_identical(vla):
    policy = vla.policy
    batch = raw_batch()
    with torch.no_grad():
        context = policy.encode(batch)
        x = torch.randn(3, CHUNK, MAX_DIM)
        times = [(1.0, 1.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.7), (0.0, 0.3)]
        attached = [policy.velocity(x, torch.full((3,), s), torch.full((3,), t), context)
                    for s, t in times]
        policy.lerobot_policy.target_time.detach()
        stock = [policy.velocity(x, torch.full((3,), t), torch.full((3,), t), context)
                 for _, t in times]
        policy.lerobot_policy.target_time.attach()
    for (s, t), with_phi, without in zip(times, attached, stock):
        assert torch.equal(with_phi, without), f"(s, t) = ({s}, {t})"
    # LeRobot's own pipeline, against the stock LeRobot class holding the same weights.
    noise = torch.randn(3, CHUNK, MAX_DIM)
    stock_policy = stock_twin(vla.kind, policy)
    for steps in (1, 10):
        policy.set_lerobot_num_steps(steps)
        stock_policy.config.num_steps = stock_policy.config.num_inference_steps = steps
        ours = lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                             batch, noise)
        theirs = lerobot_chunk(stock_policy, policy.preprocessor, policy.postprocessor,
                               batch, noise)
        assert torch.equal(ours, theirs), f"{steps} steps"


def test_target_time_changes_the_velocity_once_trained(vla):
    policy = vla.policy
    perturb_target_time(policy)
    batch = raw_batch()
    x = torch.randn(3, CHUNK, MAX_DIM)
    ones = torch.ones(3)
    with torch.no_grad():
        context = policy.encode(batch)
        local = policy.velocity(x, ones, ones, context)
        jump = policy.velocity(x, torch.zeros(3), ones, context)
    assert not torch.allclose(local, jump)


# -- training -------------------------------------------------------------------------------------

def test_snapflow_step_changes_no_vlm_parameter(vla):
    policy = vla.policy
    prefix = policy.prefix_parameters()
    trainable = policy.trainable_parameters("snapflow")
    assert prefix and trainable
    assert not {id(p) for p in prefix} & {id(p) for p in trainable}
    assert {id(p) for p in policy.target_time_parameters()} <= {id(p) for p in trainable}
    for param in prefix:
        param.requires_grad_(False)
    before_prefix = [p.detach().clone() for p in prefix]
    before_trainable = [p.detach().clone() for p in trainable]
    policy.train()
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    loss, metrics = snapflow_loss(policy, raw_batch(rows=4), SnapFlowConfig(alpha=0.5),
                                  generator=torch.Generator().manual_seed(1))
    loss.backward()
    optimizer.step()
    assert metrics["fm_fraction"] == 0.5
    assert all(torch.equal(a, p) for a, p in zip(before_prefix, prefix))
    changed = [not torch.equal(a, p) for a, p in zip(before_trainable, trainable)]
    assert sum(changed) > len(changed) // 2
    assert any(not torch.equal(a, p) for a, p in zip(
        before_trainable, trainable) if any(p is q for q in policy.target_time_parameters()))


def test_loss_mask_hides_padded_steps_and_padded_action_dims(vla):
    policy = vla.policy
    batch = raw_batch()
    x0, mask = policy.normalized_action_target(batch)
    assert x0.shape == mask.shape == (3, CHUNK, MAX_DIM)
    assert torch.all(mask[:, :, 3:] == 0) and torch.all(x0[:, :, 3:] == 0)
    assert torch.all(mask[0, CHUNK - 3:] == 0) and torch.all(mask[1:, :, :3] == 1)
    if vla.kind == "pi05":  # LeRobot's QUANTILES: q01..q99 -> [-1, 1]
        low, high = torch.tensor(STATS.action_q01), torch.tensor(STATS.action_q99)
        expected = 2 * (batch["action"] - low) / (high - low) - 1
    else:  # MEAN_STD
        expected = ((batch["action"] - torch.tensor(STATS.action_mean))
                    / torch.tensor(STATS.action_std))
    torch.testing.assert_close(x0[:, :, :3], expected)
    torch.testing.assert_close(policy.to_robot_actions(x0), batch["action"])


def test_queries_on_selected_rows_of_one_context_match_the_full_batch(vla):
    policy = vla.policy
    with torch.no_grad():
        context = policy.encode(raw_batch())
        shapes = [k.shape for k in context["keys"]]
        x = torch.randn(3, CHUNK, MAX_DIM)
        t = torch.tensor([0.9, 0.4, 0.7])
        full = policy.velocity(x, t, t, context)
        again = policy.velocity(x, t, t, context)
        rows = torch.tensor([2, 0])
        part = policy.velocity(x[rows], t[rows], t[rows], policy.select_context(context, rows))
    assert [k.shape for k in context["keys"]] == shapes  # SmolVLA's crop left it intact
    assert torch.equal(full, again)
    torch.testing.assert_close(part, full[rows], rtol=1e-5, atol=1e-5)


def test_calls_from_two_threads_are_serialised_not_interleaved(vla):
    policy = vla.policy
    batch = raw_batch()
    x = torch.randn(3, CHUNK, MAX_DIM)
    t = torch.full((3,), 0.6)
    with torch.no_grad():
        expected = policy.velocity(x, t, t, policy.encode(batch))
    results, errors = [], []

    def worker():
        try:
            with torch.no_grad():
                for _ in range(3):
                    results.append(policy.velocity(x, t, t, policy.encode(batch)))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 6 and all(torch.equal(r, expected) for r in results)


# -- sampling -------------------------------------------------------------------------------------

def test_one_and_ten_step_sampling_run_from_raw_observations(vla):
    policy = vla.policy
    perturb_target_time(policy)
    batch = {k: v for k, v in raw_batch().items() if k not in ("action", "action_is_pad")}
    noise = torch.randn(3, CHUNK, MAX_DIM)
    one = predict_action_chunk(policy, batch, num_steps=1, mode="jump", noise=noise)
    ten = predict_action_chunk(policy, batch, num_steps=10, mode="jump", noise=noise)
    euler = predict_action_chunk(policy, batch, num_steps=10, mode="euler", noise=noise)
    for actions in (one, ten, euler):
        assert actions.shape == (3, CHUNK, 3) and torch.isfinite(actions).all()
    assert not torch.allclose(one, ten)
    # 1 NFE is exactly eps - F(eps, 0, 1), un-normalised by LeRobot's postprocessor ...
    with torch.no_grad():
        jump = noise - policy.velocity(noise, torch.zeros(3), torch.ones(3), policy.encode(batch))
    assert torch.equal(one, policy.to_robot_actions(jump))
    # ... and what LeRobot's own pipeline gives with one Euler step of the SnapFlow policy.
    policy.set_lerobot_num_steps(1)
    lerobot = lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                            batch, noise)
    assert torch.equal(one, lerobot)


def test_lerobot_step_count_is_read_where_each_model_reads_it(vla):
    policy = vla.policy
    calls = []
    denoise = policy.model.denoise_step
    policy.model.denoise_step = lambda *a, **k: calls.append(1) or denoise(*a, **k)
    try:
        policy.set_lerobot_num_steps(3)
        lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                      raw_batch(), torch.randn(3, CHUNK, MAX_DIM))
    finally:
        del policy.model.denoise_step
    assert len(calls) == 3


# -- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["smolvla", "pi05"])
def test_bfloat16_gradient_checkpointing_and_small_images_train_and_sample(kind, backbones):
    policy = build_vla(kind, backbones, dtype="bfloat16", gradient_checkpointing=True,
                       image_size=32)
    dtypes = {p.dtype for p in policy.model.parameters()}
    assert torch.bfloat16 in dtypes
    for param in policy.prefix_parameters():
        param.requires_grad_(False)
    policy.train()
    loss, _ = snapflow_loss(policy, raw_batch(), SnapFlowConfig(),
                            generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in policy.trainable_parameters("snapflow") if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    actions = predict_action_chunk(policy.eval(), raw_batch(), num_steps=1)
    assert actions.shape == (3, CHUNK, 3) and torch.isfinite(actions).all()


# -- environment state ----------------------------------------------------------------------------

def test_environment_state_rides_on_the_state_vector_within_max_state_dim(backbones, tmp_path):
    import dataclasses

    from vla_fixtures import ROBOT, give_time_conditioning_weights, vla_options

    from snapflow_ros.config_fields import ConfigError
    from snapflow_ros.policies.checkpoint import load_policy, save_checkpoint
    from snapflow_ros.policies.registry import new_policy

    robot = dataclasses.replace(ROBOT, environment_state_names=("cube/x", "cube/y"))
    stats = dataclasses.replace(STATS, environment_state_mean=[0.1, 0.5],
                                environment_state_std=[0.05, 0.05])
    torch.manual_seed(0)
    policy = new_policy("smolvla", vla_options("smolvla", backbones), robot, stats).eval()
    give_time_conditioning_weights(policy)
    batch = raw_batch()
    with pytest.raises(KeyError, match="cube/x"):
        predict_action_chunk(policy, batch, num_steps=1)
    noise = torch.randn(3, CHUNK, MAX_DIM, generator=torch.Generator().manual_seed(1))
    batch["environment_state"] = torch.tensor([[0.1, 0.5]] * 3)
    here = predict_action_chunk(policy, batch, num_steps=1, noise=noise)
    batch["environment_state"] = torch.tensor([[0.2, 0.4]] * 3)
    there = predict_action_chunk(policy, batch, num_steps=1, noise=noise)
    assert not torch.allclose(here, there)
    save_checkpoint(policy, tmp_path / "run", stage="teacher", step=1)
    loaded = load_policy(tmp_path / "run")
    assert loaded.robot.environment_state_names == ("cube/x", "cube/y")
    assert torch.allclose(predict_action_chunk(loaded, batch, num_steps=1, noise=noise), there,
                          atol=1e-5)

    too_many = dataclasses.replace(ROBOT, environment_state_names=tuple(
        f"poses/{i}" for i in range(MAX_DIM)))
    with pytest.raises(ConfigError, match="environment-state"):
        new_policy("smolvla", vla_options("smolvla", backbones), too_many, None)
