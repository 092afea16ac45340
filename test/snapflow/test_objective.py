# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the flow-matching and SnapFlow objectives on a tiny policy."""

import pytest
import torch
from toy_policies import ToyFlowPolicy, toy_batch

from snapflow_ros.config_fields import ConfigError, config_from_dict
from snapflow_ros.snapflow import (
    SnapFlowConfig,
    action_dimension_mask,
    consistency_target,
    evaluation_mode,
    flow_matching_loss,
    sample_time,
    snapflow_loss,
)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _masked_mean_per_sample(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (error * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)


@pytest.fixture
def policy() -> ToyFlowPolicy:
    torch.manual_seed(0)
    # Three chunk steps, one real action and one padded action dimension.
    return ToyFlowPolicy(chunk_size=3, num_actions=1, padded_action_dim=2,
                         action_mean=0.5, action_std=2.0)


def test_config_defaults_follow_the_paper_and_bad_values_are_rejected():
    config = SnapFlowConfig()
    assert (config.alpha, config.consistency_weight, config.velocity_clamp) == (0.5, 0.1, 20.0)
    assert config_from_dict(SnapFlowConfig, {"alpha": 1, "time_distribution": "beta"}).alpha == 1.0
    for bad in ({"alpha": 1.5}, {"alpha": -0.1}, {"consistency_weight": -1.0},
                {"velocity_clamp": 0.0}, {"time_distribution": "logit_normal"}):
        with pytest.raises(ConfigError):
            SnapFlowConfig(**bad)


def test_beta_time_distribution_is_scaled_beta_1_5_1_and_seedable():
    times = sample_time(20000, "beta", generator=_seeded())
    assert times.min() >= 0.001 and times.max() <= 1.0
    # Beta(1.5, 1) has mean 0.6 and P(T < 0.5) = 0.5 ** 1.5.
    assert times.mean().item() == pytest.approx(0.6 * 0.999 + 0.001, abs=0.01)
    assert (times < 0.5 * 0.999 + 0.001).float().mean().item() == pytest.approx(0.5**1.5, abs=0.01)
    assert torch.equal(times, sample_time(20000, "beta", generator=_seeded()))
    uniform = sample_time(20000, "uniform", generator=_seeded())
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.01)


def test_flow_matching_loss_regresses_eps_minus_action_at_the_interpolant(policy):
    batch = toy_batch(policy, 6, generator=_seeded(1), padded_steps=1)
    loss, metrics = flow_matching_loss(policy, batch, generator=_seeded(2))

    actions, mask = policy.normalized_action_target(batch)
    generator = _seeded(2)  # same draw order as the objective: noise, then times
    noise = torch.randn(actions.shape, generator=generator)
    t = torch.rand(6, generator=generator)
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
    with torch.no_grad():
        prediction = policy.velocity(x_t, t, t, policy.encode(batch))
    expected = _masked_mean_per_sample((prediction - (noise - actions)) ** 2, mask).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(loss.item()) == pytest.approx(metrics["fm_loss"])


def test_snapflow_with_alpha_one_is_the_flow_matching_loss(policy):
    batch = toy_batch(policy, 6, generator=_seeded(1), padded_steps=2)
    fm, _ = flow_matching_loss(policy, batch, generator=_seeded(3))
    sf, metrics = snapflow_loss(policy, batch, SnapFlowConfig(alpha=1.0), generator=_seeded(3))
    assert sf.item() == pytest.approx(fm.item(), rel=1e-6)
    assert metrics["fm_fraction"] == 1.0 and metrics["consistency_loss"] == 0.0


def test_consistency_loss_at_init_is_a_quarter_of_the_two_step_velocity_gap(policy):
    """With phi_s at zero, F(x1, 0, 1) = u1, so the loss is lambda / 4 * ||u1 - u_half||^2.

    Over every chunk step, padded ones included, but not over the padded action dimension.
    """
    batch = toy_batch(policy, 5, generator=_seeded(1), padded_steps=1)
    config = SnapFlowConfig(alpha=0.0, consistency_weight=0.3)
    loss, metrics = snapflow_loss(policy, batch, config, generator=_seeded(4))

    _, mask = policy.normalized_action_target(batch)
    x1 = torch.randn(5, 3, 2, generator=_seeded(4))
    ones = torch.ones(5)
    with torch.no_grad():
        context = policy.encode(batch)
        u1 = policy.velocity(x1, ones, ones, context)
        u_half = policy.velocity(x1 - 0.5 * u1, 0.5 * ones, 0.5 * ones, context)
    every_step = mask.amax(dim=1, keepdim=True).expand_as(mask)
    gap = _masked_mean_per_sample((u1 - u_half) ** 2, every_step)
    expected = 0.3 * 0.25 * gap.mean()
    assert expected.item() > 1e-6  # the check below must not pass trivially
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.3 * metrics["consistency_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert metrics["fm_loss"] == 0.0 and metrics["fm_fraction"] == 0.0


def test_groups_weigh_in_proportion_to_alpha(policy):
    batch = toy_batch(policy, 8, generator=_seeded(1))
    config = SnapFlowConfig(alpha=0.25, consistency_weight=0.1)
    loss, metrics = snapflow_loss(policy, batch, config, generator=_seeded(5))
    assert metrics["fm_fraction"] == 0.25
    expected = 0.25 * metrics["fm_loss"] + 0.75 * 0.1 * metrics["consistency_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_batch_of_one_alternates_between_groups_with_probability_alpha(policy):
    batch = toy_batch(policy, 1, generator=_seeded(1))
    generator = _seeded(6)
    fractions = [snapflow_loss(policy, batch, SnapFlowConfig(alpha=0.5),
                               generator=generator)[1]["fm_fraction"] for _ in range(200)]
    assert set(fractions) == {0.0, 1.0}
    assert 0.35 < sum(fractions) / len(fractions) < 0.65


class _VelocityCalls:
    """Records every velocity query of a policy: (s, t, output requires grad)."""

    def __init__(self, policy: ToyFlowPolicy) -> None:
        self.calls = []
        original = policy.velocity

        def recorded(x, s, t, context):
            out = original(x, s, t, context)
            self.calls.append((s.detach().clone(), t.detach().clone(), out.requires_grad))
            return out

        policy.velocity = recorded


def test_snapflow_stage_gradients_reach_only_trainable_parameters(policy):
    for parameter in policy.prefix_parameters():
        parameter.requires_grad_(False)
    encode_calls = []
    original_encode = policy.encode
    policy.encode = lambda batch: encode_calls.append(1) or original_encode(batch)
    calls = _VelocityCalls(policy)
    batch = toy_batch(policy, 6, generator=_seeded(1))
    loss, _ = snapflow_loss(policy, batch, SnapFlowConfig(), generator=_seeded(7))
    loss.backward()

    assert all(p.grad is None for p in policy.prefix_parameters())
    for name, parameter in policy.named_parameters():
        if not name.startswith("encoder."):
            assert parameter.grad is not None, name
    assert torch.count_nonzero(policy.phi_s.out.weight.grad) > 0
    assert len(encode_calls) == 1
    # Two target queries without gradient, then ONE student query for all six rows.
    (s1, t1, grad1), (s2, t2, grad2), (s3, t3, grad3) = calls.calls
    assert not grad1 and not grad2 and grad3
    assert torch.equal(s1, torch.ones(3)) and torch.equal(t1, torch.ones(3))
    assert torch.equal(s2, torch.full((3,), 0.5)) and torch.equal(t2, torch.full((3,), 0.5))
    assert torch.equal(s3[:3], t3[:3])  # flow-matching rows: local velocity
    assert torch.equal(s3[3:], torch.zeros(3)) and torch.equal(t3[3:], torch.ones(3))


def test_teacher_stage_trains_the_encoder_too(policy):
    loss, _ = flow_matching_loss(policy, toy_batch(policy, 4, generator=_seeded(1)),
                                 generator=_seeded(2))
    loss.backward()
    assert all(p.grad is not None for p in policy.prefix_parameters())


def test_two_step_target_velocities_are_clamped(policy):
    batch = toy_batch(policy, 4, generator=_seeded(1))
    _, mask = policy.normalized_action_target(batch)
    huge = torch.full((4, 3, 2), 1e6)
    original = policy.velocity
    # Targets are 1e6 everywhere; the student (the query with gradient) predicts 0.
    policy.velocity = lambda x, s, t, c: (original(x, s, t, c) * 0 if torch.is_grad_enabled()
                                          else huge)
    config = SnapFlowConfig(alpha=0.0, consistency_weight=1.0, velocity_clamp=3.0)
    loss, _ = snapflow_loss(policy, batch, config, generator=_seeded(2))
    assert loss.item() == pytest.approx(9.0)


def _perturbed_where_masked(policy: ToyFlowPolicy, scale: float) -> None:
    original = policy.normalized_action_target

    def perturbed(batch):
        actions, mask = original(batch)
        junk = torch.randn(actions.shape, generator=_seeded(99)) * scale
        return torch.where(mask > 0, actions, junk), mask

    policy.normalized_action_target = perturbed


@pytest.mark.parametrize("objective", ["flow_matching", "snapflow"])
def test_padded_steps_and_dims_do_not_change_the_loss(objective):
    """Targets at padded chunk steps and padded action dims are ignored.

    The policy's velocity at one chunk element depends only on that element's input here, so
    the loss may not move at all when the targets there change.
    """
    torch.manual_seed(0)
    policy = ToyFlowPolicy(chunk_size=4, num_actions=2, padded_action_dim=3, mix_positions=False)
    batch = toy_batch(policy, 6, generator=_seeded(1), padded_steps=2)

    def loss_of(batch):
        if objective == "flow_matching":
            return flow_matching_loss(policy, batch, generator=_seeded(2))[0]
        return snapflow_loss(policy, batch, SnapFlowConfig(), generator=_seeded(2))[0]

    reference = loss_of(batch)
    changed = dict(batch, action=batch["action"].clone())
    changed["action"][batch["action_is_pad"]] = 1e3
    assert torch.equal(loss_of(changed), reference)
    _perturbed_where_masked(policy, scale=1e3)
    assert torch.equal(loss_of(batch), reference)
    # Control: the same change at valid steps does move the loss.
    valid = dict(batch, action=batch["action"].clone())
    valid["action"][~batch["action_is_pad"]] += 1.0
    assert not torch.equal(loss_of(valid), reference)


def test_predictions_at_masked_positions_get_no_gradient(policy):
    """Whatever a position-mixing network outputs at padded positions, the loss ignores it."""
    batch = toy_batch(policy, 4, generator=_seeded(1), padded_steps=1)
    _, mask = policy.normalized_action_target(batch)
    outputs = []
    original = policy.velocity

    def kept(x, s, t, context):
        out = original(x, s, t, context)
        if torch.is_grad_enabled():
            out.retain_grad()
            outputs.append(out)
        return out

    policy.velocity = kept
    loss, _ = snapflow_loss(policy, batch, SnapFlowConfig(), generator=_seeded(2))
    loss.backward()
    (student,) = outputs
    # Rows 0-1 are flow-matching rows (all masked positions); rows 2-3 consistency rows, whose
    # padded steps are trained too (no ground truth there) but not the padded dimension.
    mask = torch.cat([mask[:2], action_dimension_mask(mask[2:])])
    assert torch.count_nonzero(student.grad[mask == 0]) == 0
    assert torch.count_nonzero(student.grad[mask > 0]) > 0


def test_context_passed_in_is_reused_and_not_recomputed(policy):
    batch = toy_batch(policy, 4, generator=_seeded(1))
    context = policy.encode(batch)
    policy.encode = lambda batch: pytest.fail("encode called although a context was given")
    loss, _ = snapflow_loss(policy, batch, SnapFlowConfig(), context=context,
                            generator=_seeded(2))
    assert torch.isfinite(loss)


# -- the two-step target: no dropout, own observations, stop-gradient; the student at s = 0 ----

def _compact_with_dropout():
    from snapflow_ros.policies.base import RobotInterface
    from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
    from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy

    torch.manual_seed(0)
    robot = RobotInterface(joint_names=("a", "b"), camera_keys=("top",), image_height=16,
                           image_width=16)
    config = CompactPolicyConfig(chunk_size=4, cnn_channels=(4, 8), hidden_dim=16, num_layers=1,
                                 num_heads=2, num_keypoints=2, time_encoding_dim=8,
                                 target_time_hidden_dim=8, dropout=0.1)
    policy = CompactFlowPolicy(config, robot).train()
    with torch.no_grad():  # trained-looking weights (the output layers start at zero)
        for parameter in policy.parameters():
            parameter.copy_(torch.randn(parameter.shape) * 0.3)
    generator = _seeded(1)
    batch = {"images": {"top": torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8,
                                             generator=generator)},
             "state": torch.randn(4, 2, generator=generator),
             "action": torch.randn(4, 4, 2, generator=generator)}
    return policy, batch


def test_two_step_target_runs_without_dropout_and_leaves_the_training_flags_alone():
    policy, batch = _compact_with_dropout()
    for parameter in policy.prefix_parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        context = policy.encode(batch)
    x1 = torch.randn(4, 4, 2, generator=_seeded(2))
    ones = torch.ones(4)
    with torch.no_grad():
        # Control: in train mode dropout does make two identical queries differ.
        assert not torch.equal(policy.velocity(x1, ones, ones, context),
                               policy.velocity(x1, ones, ones, context))
    first = consistency_target(policy, x1, context, 20.0)
    assert torch.equal(first, consistency_target(policy, x1, context, 20.0))
    with torch.no_grad(), evaluation_mode(policy):
        u1 = policy.velocity(x1, ones, ones, context)
        half = torch.full((4,), 0.5)
        u_half = policy.velocity(x1 - 0.5 * u1, half, half, context)
    assert torch.allclose(first, 0.5 * (u1 + u_half))

    policy.observation_encoder.eval()  # a part deliberately kept in eval stays in eval
    flags = {name: module.training for name, module in policy.named_modules()}
    assert any(flags.values()) and not all(flags.values())
    loss_a, _ = snapflow_loss(policy, batch, SnapFlowConfig(alpha=0.0), generator=_seeded(3))
    assert {name: module.training for name, module in policy.named_modules()} == flags
    # The student's query keeps its dropout: the same draws give another loss.
    loss_b, _ = snapflow_loss(policy, batch, SnapFlowConfig(alpha=0.0), generator=_seeded(3))
    assert loss_a.item() != loss_b.item()


def test_padded_steps_mask_the_flow_matching_rows_only():
    """Consistency rows never read the ground truth: action_is_pad must not mask them."""
    torch.manual_seed(0)
    policy = ToyFlowPolicy(chunk_size=4, num_actions=2, padded_action_dim=3)
    batch = toy_batch(policy, 6, generator=_seeded(1))
    padded = dict(batch, action_is_pad=batch["action_is_pad"].clone())
    padded["action_is_pad"][:, 2:] = True
    config = SnapFlowConfig(alpha=0.5)
    _, plain = snapflow_loss(policy, batch, config, generator=_seeded(2))
    _, masked = snapflow_loss(policy, padded, config, generator=_seeded(2))
    assert masked["fm_fraction"] == plain["fm_fraction"] == 0.5
    assert masked["fm_loss"] != pytest.approx(plain["fm_loss"], rel=1e-3)
    assert masked["consistency_loss"] == pytest.approx(plain["consistency_loss"], rel=1e-6)
    # Padded action DIMENSIONS stay out of the consistency loss (they are never executed).
    _, mask = policy.normalized_action_target(batch)
    assert torch.equal(action_dimension_mask(mask), mask)
    assert torch.equal(action_dimension_mask(policy.normalized_action_target(padded)[1]), mask)
    assert torch.count_nonzero(mask[..., 2]) == 0


class _ObservationVelocity(ToyFlowPolicy):
    """A toy whose velocity is ``context * (1 + s) + x / 4``: the observation matters."""

    def velocity(self, x, s, t, context):
        del t
        scale = (1.0 + s)[:, None, None]
        return context[:, None, : self.action_dim] * scale + x / 4


def _expected_consistency(context: torch.Tensor, x1: torch.Tensor, student_s: float,
                          mask: torch.Tensor) -> torch.Tensor:
    """Per-sample consistency loss of :class:`_ObservationVelocity` computed by hand."""
    c = context[:, None, :x1.shape[-1]]
    u1 = 2 * c + x1 / 4
    x_half = x1 - 0.5 * u1
    u_half = 1.5 * c + x_half / 4
    target = 0.5 * (u1 + u_half)
    student = (1 + student_s) * c + x1 / 4
    return _masked_mean_per_sample((student - target) ** 2, mask)


def test_consistency_targets_use_the_consistency_rows_own_observations_and_s_zero():
    """Targets from the FM rows' observations, or the student at s = 1, give other numbers."""
    torch.manual_seed(0)
    policy = _ObservationVelocity(chunk_size=3, num_actions=2, state_dim=2, context_dim=4)
    batch = toy_batch(policy, 6, generator=_seeded(1))
    batch["state"] = torch.arange(6.0)[:, None].repeat(1, 2) - 2.5  # every row its own
    _, metrics = snapflow_loss(policy, batch, SnapFlowConfig(alpha=0.5), generator=_seeded(2))

    with torch.no_grad():
        context = policy.encode(batch)
    _, mask = policy.normalized_action_target(batch)
    x1 = torch.randn(6, 3, 2, generator=_seeded(2))[3:]  # the draw order of the objective
    own = _expected_consistency(context[3:], x1, 0.0, mask[3:]).mean().item()
    assert metrics["consistency_loss"] == pytest.approx(own, rel=1e-5)
    # The two bugs the test is there for would produce these numbers instead.
    c_own = context[3:, None, :2]
    target_from_fm_rows = (0.5 * (2 * context[:3, None, :2] + x1 / 4)
                           + 0.5 * (1.5 * context[:3, None, :2]
                                    + (x1 - 0.5 * (2 * context[:3, None, :2] + x1 / 4)) / 4))
    swapped = _masked_mean_per_sample((c_own + x1 / 4 - target_from_fm_rows) ** 2,
                                      mask[3:]).mean().item()
    at_s_one = _expected_consistency(context[3:], x1, 1.0, mask[3:]).mean().item()
    assert min(abs(swapped - own), abs(at_s_one - own)) > 1e-2 * own


def test_gradient_flows_through_the_student_only():
    """The stop-gradient: the gradient is that of ``|F(x1, 0, 1) - sg(v_hat)|^2``."""
    torch.manual_seed(0)
    policy = ToyFlowPolicy(chunk_size=3, num_actions=2)
    with torch.no_grad():  # a trained phi_s, so that the student is not the target's u1
        policy.phi_s.out.weight.normal_(0.0, 0.5)
    batch = toy_batch(policy, 4, generator=_seeded(1))
    config = SnapFlowConfig(alpha=0.0, consistency_weight=1.0)
    loss, _ = snapflow_loss(policy, batch, config, generator=_seeded(2))
    loss.backward()
    got = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
    policy.zero_grad()

    context = policy.encode(batch)
    x1 = torch.randn(4, 3, 2, generator=_seeded(2))
    ones = torch.ones(4)
    target = consistency_target(policy, x1, context, 20.0).detach()
    student = policy.velocity(x1, torch.zeros(4), ones, context)
    ((student - target) ** 2).mean().backward()
    for name, parameter in policy.named_parameters():
        assert torch.allclose(got[name], parameter.grad, atol=1e-7), name
