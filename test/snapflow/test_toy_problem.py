# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""End-to-end toy problem: SnapFlow turns a bimodal flow-matching teacher into a 1-NFE sampler.

Data: 1-D actions (chunk of one step) from the mixture 0.5 N(-1, 0.05^2) + 0.5 N(+1, 0.05^2),
independent of the state, normalised with std 0.5 (modes at -2 and +2 in model units). A teacher
trained with flow matching samples it well in 10 Euler steps, while its naive 1-step sample
collapses to the mean 0 (at t = 1 the exact velocity is ``x - E[a]``). SnapFlow, started from the
teacher weights with ``phi_s`` attached, recovers both modes in one network evaluation, and
leaves the local velocity ``F(x, t, t)`` the teacher's.

Distance: the 1-D Wasserstein-1 distance to a fresh sample of the data, from sorted equal-size
samples (mean |x_(i) - y_(i)|), in robot units. A sampler that outputs 0 scores 1.0.
"""

import pytest
import torch
from toy_policies import ToyFlowPolicy

from snapflow_ros.snapflow import (
    SnapFlowConfig,
    flow_matching_loss,
    sample_chunk,
    sample_noise,
    snapflow_loss,
)

MODE = 1.0
MODE_STD = 0.05
BATCH = 256
EVAL_SAMPLES = 4000


def _draw_actions(n: int, generator: torch.Generator) -> torch.Tensor:
    signs = torch.where(torch.rand(n, generator=generator) < 0.5, -MODE, MODE)
    return signs + MODE_STD * torch.randn(n, generator=generator)


def _batch(n: int, generator: torch.Generator) -> dict:
    return {"state": torch.randn(n, 2, generator=generator),
            "action": _draw_actions(n, generator)[:, None, None]}


def _wasserstein_1(x: torch.Tensor, y: torch.Tensor) -> float:
    return (x.sort().values - y.sort().values).abs().mean().item()


def _toy_policy(target_time: bool) -> ToyFlowPolicy:
    return ToyFlowPolicy(chunk_size=1, num_actions=1, state_dim=2, hidden_dim=64, time_dim=16,
                         action_std=MODE / 2, target_time=target_time)


def _train(policy, loss_of, parameters, *, steps: int, lr: float, generator) -> None:
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        loss, _ = loss_of(policy, _batch(BATCH, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def _samples(policy, context, noise, *, num_steps: int, mode: str) -> torch.Tensor:
    chunk = sample_chunk(policy, context, num_steps=num_steps, mode=mode, noise=noise)
    return policy.to_robot_actions(chunk).flatten()


def _near_modes(samples: torch.Tensor) -> float:
    return ((samples.abs() - MODE).abs() < 0.25).float().mean().item()


@pytest.fixture
def one_thread():
    """Run on one thread: for matrices this small, thread hand-offs cost more than they save."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_snapflow_one_step_recovers_the_modes_that_naive_one_step_loses(one_thread):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    # The teacher is an ordinary flow-matching model: phi_s is attached only for SnapFlow.
    teacher = _toy_policy(target_time=False)
    _train(teacher, lambda p, b: flow_matching_loss(p, b, generator=generator),
           teacher.parameters(), steps=2000, lr=3e-3, generator=generator)

    evaluation = torch.Generator().manual_seed(1000)
    data = _draw_actions(EVAL_SAMPLES, evaluation)
    context = teacher.encode(_batch(EVAL_SAMPLES, evaluation))
    noise = sample_noise((EVAL_SAMPLES, 1, 1), generator=evaluation)
    teacher_10 = _samples(teacher, context, noise, num_steps=10, mode="euler")
    teacher_2 = _samples(teacher, context, noise, num_steps=2, mode="euler")
    naive_1 = _samples(teacher, context, noise, num_steps=1, mode="euler")

    student = _toy_policy(target_time=True)
    missing, _ = student.load_state_dict(teacher.state_dict(), strict=False)
    assert missing and all(key.startswith("phi_s.") for key in missing)
    assert torch.equal(_samples(student, context, noise, num_steps=1, mode="jump"), naive_1)
    for parameter in student.prefix_parameters():
        parameter.requires_grad_(False)
    config = SnapFlowConfig()  # the paper's alpha = 0.5, lambda = 0.1
    _train(student, lambda p, b: snapflow_loss(p, b, config, generator=generator),
           student.trainable_parameters("snapflow"), steps=1000, lr=1e-3, generator=generator)
    snapflow_1 = _samples(student, context, noise, num_steps=1, mode="jump")
    # The student's local velocity F(x, t, t): its naive 1-step Euler sample.
    local_1 = _samples(student, context, noise, num_steps=1, mode="euler")

    w1_teacher_10 = _wasserstein_1(teacher_10, data)
    w1_naive_1 = _wasserstein_1(naive_1, data)
    w1_snapflow_1 = _wasserstein_1(snapflow_1, data)
    # For reference: the two half Euler steps that SnapFlow's consistency target is built from.
    w1_teacher_2 = _wasserstein_1(teacher_2, data)
    print(f"W1 to data: teacher 10-step {w1_teacher_10:.3f}, teacher 2-step {w1_teacher_2:.3f}, "
          f"naive 1-step {w1_naive_1:.3f}, SnapFlow 1-NFE {w1_snapflow_1:.3f}; near modes: "
          f"{_near_modes(teacher_10):.2f}, {_near_modes(naive_1):.2f}, "
          f"{_near_modes(snapflow_1):.2f}")

    # (a) The teacher reproduces both modes with about half the mass each.
    assert w1_teacher_10 < 0.15
    assert 0.4 < (teacher_10 > 0).float().mean().item() < 0.6
    assert _near_modes(teacher_10) > 0.8
    # (b) Its naive 1-step sample collapses toward the mean between the modes.
    assert w1_naive_1 > 0.7
    assert naive_1.abs().mean().item() < 0.3
    # (c) SnapFlow's 1-NFE sample is far closer to the data than the naive 1-step sample.
    assert w1_snapflow_1 < 0.5 * w1_naive_1
    assert 0.35 < (snapflow_1 > 0).float().mean().item() < 0.65
    assert _near_modes(snapflow_1) > 2 * _near_modes(naive_1) + 0.2
    # (d) The jump was learnt at s = 0: the local velocity (s = t) stays the teacher's, so its
    # 1-step Euler sample stays the collapsed one (a student queried at s = 1 would have pulled
    # F(x, 1, 1) to the two-step target instead: mean gap ~0.8 instead of ~0.1).
    assert (local_1 - naive_1).abs().mean().item() < 0.3
