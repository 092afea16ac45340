# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training objectives: flow matching (teacher stage) and SnapFlow self-distillation.

Both losses work on any :class:`~snapflow_ros.policies.base.FlowMatchingPolicy`. Time
convention: ``x_t = t * eps + (1 - t) * a`` with ``t = 1`` noise and ``t = 0`` the normalised
action chunk ``a``; the flow-matching target velocity is ``eps - a``.

Every per-sample loss is a masked mean over that sample's valid elements; the batch loss is the
mean of the per-sample losses, so in :func:`snapflow_loss` the two groups weigh in proportion to
their number of samples. Flow-matching rows exclude padded chunk steps (``action_is_pad``: no
ground truth there) and padded action dimensions; consistency rows exclude only the padded
action dimensions (see :func:`action_dimension_mask`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.snapflow.sampler import sample_noise

if TYPE_CHECKING:
    from snapflow_ros.policies.base import FlowMatchingPolicy

Context = Any  # a policy's encoded observation (see snapflow_ros.policies.base)

TIME_DISTRIBUTIONS = ("uniform", "beta")
# Beta(1.5, 1) scaled into [0.001, 1], the training-time distribution of pi0 / SmolVLA.
_BETA_CONCENTRATION = 1.5
_BETA_SCALE = 0.999
_BETA_OFFSET = 0.001


@dataclasses.dataclass(frozen=True)
class SnapFlowConfig:
    """Hyper-parameters of the SnapFlow self-distillation objective."""

    alpha: float = param(
        0.5, "Fraction of each batch used as flow-matching samples; the rest are consistency "
        "samples.", low=0.0, high=1.0)
    consistency_weight: float = param(
        0.1, "Weight lambda of the consistency loss.", low=0.0)
    time_distribution: str = param(
        "uniform", "Distribution of t for flow-matching samples: uniform U(0, 1), or beta "
        "(Beta(1.5, 1) * 0.999 + 0.001, as pi0 / SmolVLA).", choices=TIME_DISTRIBUTIONS)
    velocity_clamp: float = param(
        20.0, "The two-step target velocities are clamped to [-c, c] (normalised units).",
        low=0.0)

    def __post_init__(self) -> None:
        check_config(self)
        if self.velocity_clamp <= 0.0:
            raise ConfigError(f"velocity_clamp={self.velocity_clamp!r}: must be > 0")


def sample_time(
    batch_size: int,
    distribution: str = "uniform",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Flow-matching times ``(batch_size,)`` from ``distribution`` (see :class:`SnapFlowConfig`)."""
    if distribution not in TIME_DISTRIBUTIONS:
        raise ValueError(f"time distribution must be one of {', '.join(TIME_DISTRIBUTIONS)}, "
                         f"got {distribution!r}")
    draw_device = generator.device if generator is not None else device
    u = torch.rand(batch_size, generator=generator, device=draw_device, dtype=torch.float32)
    if distribution == "beta":
        # Beta(a, 1) has CDF x**a, so u**(1/a) is an exact draw that honours the generator
        # (torch.distributions.Beta cannot take one).
        u = u.pow(1.0 / _BETA_CONCENTRATION) * _BETA_SCALE + _BETA_OFFSET
    return u.to(device=device if device is not None else u.device,
                dtype=dtype if dtype is not None else torch.float32)


def _prefix_is_frozen(policy: FlowMatchingPolicy) -> bool:
    prefix = policy.prefix_parameters()
    return bool(prefix) and not any(p.requires_grad for p in prefix)


def encode_for_training(policy: FlowMatchingPolicy, batch: dict) -> Context:
    """Encode ``batch`` once for a training step.

    Runs under ``torch.no_grad()`` when the policy declares prefix parameters and all of them are
    frozen (the SnapFlow stage), which saves the prefix activations; otherwise with autograd, so
    a trainable encoder (teacher stage) still learns.
    """
    if _prefix_is_frozen(policy):
        with torch.no_grad():
            return policy.encode(batch)
    return policy.encode(batch)


def _masked_mean_per_sample(squared_error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of ``squared_error`` ``(B, H, D)`` over ``mask`` -> ``(B,)``."""
    mask = mask.to(squared_error.dtype)
    # where() rather than a product so that non-finite values at padded positions cannot leak.
    total = torch.where(mask > 0, squared_error * mask, 0.0).flatten(1).sum(dim=1)
    # A fully padded sample contributes 0 instead of 0 / 0.
    return total / mask.flatten(1).sum(dim=1).clamp_min(1.0)


def action_dimension_mask(mask: torch.Tensor) -> torch.Tensor:
    """The padded-action-dimension part of a loss mask ``(B, H, D)``, over every step.

    A policy's mask is (step valid) x (dimension valid), so a dimension is real where any step
    of the row is valid. Consistency rows take this mask instead of the full one: they never
    read the ground truth, so a chunk step past the episode end is as good a target as any
    other (the model's own two-step velocity), while a padded action dimension (the VLAs pad
    the robot's actions to their fixed action width) is never executed, so it stays out of both
    losses.
    """
    return mask.amax(dim=1, keepdim=True).expand_as(mask)


@contextlib.contextmanager
def evaluation_mode(module: torch.nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode (no dropout) inside the block, then restore every flag.

    Each submodule gets back its own previous ``training`` flag (a frozen part kept in eval
    stays in eval). The whole module rather than its ``nn.Dropout`` children: attention
    dropout is often functional, gated on ``self.training``.
    """
    previous = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for submodule, training in previous:
            submodule.training = training


def consistency_target(policy: FlowMatchingPolicy, x1: torch.Tensor, context: Context,
                       velocity_clamp: float) -> torch.Tensor:
    """SnapFlow's two-step target ``v_hat = (u1 + u_half) / 2`` from noise ``x1`` ``(B, H, D)``.

    ``u1 = F(x1, 1, 1)``, ``u_half = F(x1 - u1 / 2, 1/2, 1/2)``, both clamped to
    ``[-velocity_clamp, velocity_clamp]``; ``context`` holds these rows' own observations.
    Computed without gradient (the stop-gradient of the objective) and in eval mode, so that
    dropout does not make the target random.
    """
    ones = torch.ones(x1.shape[0], device=x1.device)
    with torch.no_grad(), evaluation_mode(policy):
        u1 = policy.velocity(x1, ones, ones, context).clamp(-velocity_clamp, velocity_clamp)
        half = torch.full_like(ones, 0.5)
        u_half = policy.velocity(x1 - 0.5 * u1, half, half, context).clamp(
            -velocity_clamp, velocity_clamp)
        return 0.5 * (u1 + u_half)


def _interpolate(actions: torch.Tensor, noise: torch.Tensor,
                 t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_t`` and the target velocity ``eps - a`` for clean ``actions`` ``(B, H, D)``."""
    t = t.to(actions.dtype)[:, None, None]
    return t * noise + (1.0 - t) * actions, noise - actions


def _float_metrics(**values: torch.Tensor) -> dict[str, float]:
    # One device sync for all metrics.
    numbers = torch.stack([v.detach().float() for v in values.values()]).tolist()
    return dict(zip(values.keys(), numbers))


def flow_matching_loss(
    policy: FlowMatchingPolicy,
    batch: dict,
    context: Context | None = None,
    generator: torch.Generator | None = None,
    *,
    time_distribution: str = "uniform",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher-stage flow-matching loss: ``|| F(x_t, s=t, t) - (eps - a) ||^2``, masked.

    ``context`` defaults to :func:`encode_for_training` of ``batch``. Returns the scalar loss
    (mean over samples of each sample's masked mean) and ``{"loss", "fm_loss"}`` as floats.
    """
    actions, mask = policy.normalized_action_target(batch)
    if context is None:
        context = encode_for_training(policy, batch)
    batch_size = actions.shape[0]
    noise = sample_noise(actions.shape, generator=generator, device=actions.device,
                         dtype=actions.dtype)
    t = sample_time(batch_size, time_distribution, generator=generator, device=actions.device)
    x_t, target = _interpolate(actions, noise, t)
    prediction = policy.velocity(x_t, t, t, context)
    per_sample = _masked_mean_per_sample((prediction - target).pow(2), mask)
    loss = per_sample.mean()
    return loss, _float_metrics(loss=loss, fm_loss=loss)


def _flow_matching_rows(batch_size: int, alpha: float,
                        generator: torch.Generator | None) -> int:
    """Count the flow-matching rows: ``alpha * B``, stochastically rounded when fractional.

    Unbiased rounding keeps the expected fraction at ``alpha`` for any batch size, including
    ``B = 1`` (then each step is a flow-matching step with probability ``alpha``).
    """
    exact = alpha * batch_size
    whole = math.floor(exact)
    fraction = exact - whole
    if fraction > 1e-9:
        draw_device = generator.device if generator is not None else None
        whole += int(torch.rand((), generator=generator, device=draw_device).item() < fraction)
    return min(max(whole, 0), batch_size)


def snapflow_loss(
    policy: FlowMatchingPolicy,
    batch: dict,
    config: SnapFlowConfig,
    context: Context | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SnapFlow self-distillation loss on one batch -> (scalar loss, float metrics).

    The first ``alpha * B`` rows are flow-matching samples (loss as in
    :func:`flow_matching_loss`), the others consistency samples: from ``x1 = eps`` the model's own
    two half Euler steps (``u1 = F(x1, 1, 1)``, ``u_half = F(x1 - u1 / 2, 1/2, 1/2)``, both
    clamped, no gradient, no dropout: :func:`consistency_target`) give
    ``v_hat = (u1 + u_half) / 2``, and the student ``F(x1, 0, 1)`` is pulled to it with weight
    ``lambda``; these rows are masked by :func:`action_dimension_mask` only. Both student
    queries share one forward with gradient. ``context`` defaults to :func:`encode_for_training`
    of ``batch`` (computed once, reused for all queries). Metrics: ``loss``; ``fm_loss`` and
    ``consistency_loss`` (unweighted, mean over that group's samples, 0.0 when the batch has
    none); ``fm_fraction``.
    """
    actions, mask = policy.normalized_action_target(batch)
    if context is None:
        context = encode_for_training(policy, batch)
    batch_size = actions.shape[0]
    device, dtype = actions.device, actions.dtype
    num_fm = _flow_matching_rows(batch_size, config.alpha, generator)
    num_cons = batch_size - num_fm

    noise = sample_noise(actions.shape, generator=generator, device=device, dtype=dtype)
    t_fm = sample_time(num_fm, config.time_distribution, generator=generator, device=device)
    x_fm, target_fm = _interpolate(actions[:num_fm], noise[:num_fm], t_fm)

    x1 = noise[num_fm:]
    ones = torch.ones(num_cons, device=device)
    if num_cons > 0:
        cons_rows = torch.arange(num_fm, batch_size, device=device)
        cons_context = context if num_fm == 0 else policy.select_context(context, cons_rows)
        target_cons = consistency_target(policy, x1, cons_context, config.velocity_clamp)
    else:
        target_cons = x1

    # One student forward for both groups; rows stay in batch order, so the full context fits.
    x_student = torch.cat([x_fm, x1])
    s_student = torch.cat([t_fm, torch.zeros_like(ones)])
    t_student = torch.cat([t_fm, ones])
    prediction = policy.velocity(x_student, s_student, t_student, context)
    target = torch.cat([target_fm, target_cons]).to(prediction.dtype)
    mask = torch.cat([mask[:num_fm], action_dimension_mask(mask[num_fm:])])
    per_sample = _masked_mean_per_sample((prediction - target).pow(2), mask)

    weights = torch.ones(batch_size, device=per_sample.device, dtype=per_sample.dtype)
    weights[num_fm:] = config.consistency_weight
    loss = (weights * per_sample).mean()

    zero = per_sample.new_zeros(())
    fm_loss = per_sample[:num_fm].mean() if num_fm else zero
    consistency_loss = per_sample[num_fm:].mean() if num_cons else zero
    metrics = _float_metrics(loss=loss, fm_loss=fm_loss, consistency_loss=consistency_loss)
    metrics["fm_fraction"] = num_fm / batch_size
    return loss, metrics
