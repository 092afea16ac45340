# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Exponential moving average (EMA) of the trained weights, as Diffusion Policy keeps one.

:class:`WeightEMA` averages the parameters the optimiser updates (buffers and frozen parameters
are not averaged: the policy's own values are used). The decay warms up as
``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` earlier updates, so that a short run is not
dominated by the random initialisation. The training loop validates and saves with the EMA
weights swapped in (:meth:`WeightEMA.swapped_in`); the resume state holds both the raw weights
and the average (:meth:`WeightEMA.state_dict`), so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def ema_decay_at(update: int, ema_decay: float) -> float:
    """Decay of update number ``update`` (0-based): ``min(ema_decay, (1 + n) / (10 + n))``."""
    return min(ema_decay, (1.0 + update) / (10.0 + update))


class WeightEMA:
    """The moving average of ``parameters`` (named, for the resume state), updated per step.

    The average is kept in float32 (a bf16 weight would lose the small EMA increments).
    """

    def __init__(self, named_parameters: list[tuple[str, torch.nn.Parameter]],
                 ema_decay: float) -> None:
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay={ema_decay!r}: must be in (0, 1)")
        self.names = [name for name, _ in named_parameters]
        self.parameters = [parameter for _, parameter in named_parameters]
        self.ema_decay = ema_decay
        self.updates = 0
        self.averages = [p.detach().to(torch.float32, copy=True) for p in self.parameters]

    @torch.no_grad()
    def update(self) -> None:
        """Blend the current weights in: ``average = d * average + (1 - d) * weight``."""
        decay = ema_decay_at(self.updates, self.ema_decay)
        weights = [p.detach().to(torch.float32) for p in self.parameters]
        torch._foreach_mul_(self.averages, decay)
        torch._foreach_add_(self.averages, weights, alpha=1.0 - decay)
        self.updates += 1

    @torch.no_grad()
    def copy_to_parameters(self) -> None:
        """Overwrite the parameters with the average (for good: the run's result)."""
        for parameter, average in zip(self.parameters, self.averages):
            parameter.copy_(average)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The EMA weights in the parameters inside the block; the raw weights restored after."""
        raw = [p.detach().clone() for p in self.parameters]
        self.copy_to_parameters()
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, value in zip(self.parameters, raw):
                    parameter.copy_(value)

    def raw_state(self) -> dict[str, torch.Tensor]:
        """The raw (optimised) weights on the CPU, by parameter name, for the resume state."""
        return {name: p.detach().to("cpu", copy=True)
                for name, p in zip(self.names, self.parameters)}

    def state_dict(self) -> dict:
        """Decay, update count and the averages (CPU, by parameter name)."""
        return {"ema_decay": self.ema_decay, "updates": self.updates,
                "averages": {name: a.detach().to("cpu", copy=True)
                             for name, a in zip(self.names, self.averages)}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (the update count sets where the warm-up stands)."""
        averages = state["averages"]
        missing = sorted(set(self.names) - set(averages))
        if missing:
            raise KeyError(f"EMA averages missing for {', '.join(missing)}")
        self.updates = int(state["updates"])
        self.averages = [averages[name].to(device=average.device, dtype=torch.float32)
                         for name, average in zip(self.names, self.averages)]


@torch.no_grad()
def load_raw_parameters(named_parameters: list[tuple[str, torch.nn.Parameter]],
                        raw: dict[str, torch.Tensor]) -> None:
    """Put a resume state's raw weights (:meth:`WeightEMA.raw_state`) back into the parameters."""
    for name, parameter in named_parameters:
        if name in raw:
            parameter.copy_(raw[name])
