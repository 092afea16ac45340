# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Samplers for flow-matching policies with a target time: 1-NFE jumps and k-step grids.

Sampling integrates from ``t = 1`` (noise) to ``t = 0`` (the action chunk) on the uniform grid
``1 = t_0 > t_1 > ... > t_k = 0``. Two ways to take a step (how a SnapFlow model should run at
k > 1 steps is not fixed by the paper, so both are offered):

- ``"jump"``: ``x <- x - (t_i - t_{i+1}) F(x, s=t_{i+1}, t=t_i)``, the average velocity to the
  next grid point. With one step this is SnapFlow's 1-NFE sample ``eps - F(eps, 0, 1)``.
- ``"euler"``: ``x <- x - (t_i - t_{i+1}) F(x, s=t_i, t=t_i)``, plain Euler on the local
  velocity. With one step on an unmodified model this is the naive 1-step baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree

from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

if TYPE_CHECKING:
    from snapflow_ros.policies.base import FlowMatchingPolicy

Context = Any  # a policy's encoded observation (see snapflow_ros.policies.base)



def sample_noise(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Draw standard normal noise of ``shape``, reproducible from ``generator``.

    The draw happens in float32 on the generator's own device and is then moved to ``device``
    and ``dtype``, so one seed gives the same noise on every device and in every precision.
    """
    draw_device = generator.device if generator is not None else device
    noise = torch.randn(tuple(shape), generator=generator, device=draw_device,
                        dtype=torch.float32)
    return noise.to(device=device if device is not None else noise.device,
                    dtype=dtype if dtype is not None else torch.float32)


def _context_batch_size(context: Context) -> int:
    for leaf in _pytree.tree_leaves(context):
        if isinstance(leaf, torch.Tensor) and leaf.ndim > 0:
            return int(leaf.shape[0])
    raise ValueError("cannot infer the batch size from the context: pass batch_size or noise")


def _check_sampler_args(num_steps: int, mode: str) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if mode not in SAMPLER_MODES:
        raise ValueError(f"mode must be one of {', '.join(SAMPLER_MODES)}, got {mode!r}")


def sample_chunk(
    policy: FlowMatchingPolicy,
    context: Context,
    *,
    num_steps: int = 1,
    mode: str = "jump",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Integrate from noise to a normalised action chunk ``(B, H, D)`` in ``num_steps`` calls.

    ``noise`` ``(B, H, D)`` is the starting point; without it noise is drawn from ``generator``
    for ``batch_size`` rows (default: the context's batch size). ``mode`` is one of
    :data:`SAMPLER_MODES`. Runs without autograd; the result is an ordinary tensor.
    """
    _check_sampler_args(num_steps, mode)
    device = policy.device
    if noise is None:
        rows = batch_size if batch_size is not None else _context_batch_size(context)
        noise = sample_noise((rows, policy.chunk_size, policy.action_dim),
                             generator=generator, device=device)
    elif noise.shape[1:] != (policy.chunk_size, policy.action_dim):
        raise ValueError(f"noise must have shape (B, {policy.chunk_size}, {policy.action_dim}), "
                         f"got {tuple(noise.shape)}")
    rows = noise.shape[0]
    # Python floats make the last grid point exactly 0 and the 1-step size exactly 1.
    grid = [1.0 - i / num_steps for i in range(num_steps)] + [0.0]
    with torch.inference_mode():
        x = noise.to(device)
        for t_now, t_next in zip(grid[:-1], grid[1:]):
            t = torch.full((rows,), t_now, device=device, dtype=torch.float32)
            s = t if mode == "euler" else torch.full_like(t, t_next)
            x = x - (t_now - t_next) * policy.velocity(x, s, t, context)
    # Inference tensors cannot be updated in place outside inference mode; a clone can.
    return x.clone()


def predict_action_chunk(
    policy: FlowMatchingPolicy,
    batch: dict,
    *,
    num_steps: int = 1,
    mode: str = "jump",
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Predict the action chunk ``(B, H, A)``, in robot units, for the observations in ``batch``.

    The observation is encoded once and reused for every sampling step.
    """
    _check_sampler_args(num_steps, mode)
    state = batch.get("state")
    batch_size = int(state.shape[0]) if isinstance(state, torch.Tensor) else None
    with torch.inference_mode():
        context = policy.encode(batch)
        x = sample_chunk(policy, context, num_steps=num_steps, mode=mode, noise=noise,
                         generator=generator, batch_size=batch_size)
        actions = policy.to_robot_actions(x)
    return actions.clone()
