# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The sinusoidal time encoding and SnapFlow's target-time embedding ``phi_s``.

``phi_s`` turns the target time ``s`` into a vector that a backend ADDS to its existing embedding
of the current time ``t``. Its output layer starts at exactly zero, so attaching it to a
pretrained flow-matching model changes no output, bit for bit, until it is trained.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_time_encoding(
    t: torch.Tensor,
    dim: int,
    min_period: float = 4e-3,
    max_period: float = 4.0,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sin/cos encoding of times ``t`` ``(B,)`` -> ``(B, dim)``, as in pi0 / SmolVLA.

    Periods are geometric from ``min_period`` to ``max_period`` over ``dim // 2`` frequencies;
    the first half holds ``sin(2 pi t / period)``, the second half the matching cosines. Computed
    in float64 where the device has it, returned in ``dtype`` (default: ``t``'s float dtype).
    """
    if dim <= 0 or dim % 2 != 0:
        raise ValueError(f"encoding dim must be a positive even number, got {dim}")
    if t.ndim != 1:
        raise ValueError(f"times must have shape (B,), got {tuple(t.shape)}")
    if not 0 < min_period <= max_period:
        raise ValueError(f"need 0 < min_period <= max_period, got {min_period}, {max_period}")
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.float32
    # float64 keeps the short periods accurate for t near 1; MPS has no float64.
    work = torch.float32 if t.device.type == "mps" else torch.float64
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=work, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2.0 * math.pi / period)[None, :] * t.to(work)[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(dtype)


class TargetTimeEmbedding(nn.Module):
    """SnapFlow's ``phi_s``: Linear -> SiLU -> Linear on the sinusoidal encoding of ``s``.

    The output layer (weight and bias) is zero-initialised and the first layer keeps PyTorch's
    default init: zeroing both would leave the gradient of every weight at zero through SiLU.
    ``min_period`` / ``max_period`` must match the encoding the backend uses for ``t``.
    """

    def __init__(
        self,
        encoding_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        *,
        min_period: float = 4e-3,
        max_period: float = 4.0,
    ) -> None:
        super().__init__()
        if encoding_dim <= 0 or encoding_dim % 2 != 0:
            raise ValueError(f"encoding_dim must be a positive even number, got {encoding_dim}")
        if out_dim <= 0:
            raise ValueError(f"out_dim must be positive, got {out_dim}")
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        if hidden_dim <= 0:
            raise ValueError(f"hidden_dim must be positive, got {hidden_dim}")
        if not 0 < min_period <= max_period:
            raise ValueError(f"need 0 < min_period <= max_period, got {min_period}, {max_period}")
        self.encoding_dim = encoding_dim
        self.out_dim = out_dim
        self.min_period = min_period
        self.max_period = max_period
        self.hidden = nn.Linear(encoding_dim, hidden_dim)
        self.activation = nn.SiLU()
        self.out = nn.Linear(hidden_dim, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Embedding of target times ``s`` ``(B,)`` -> ``(B, out_dim)`` (zero at init)."""
        encoded = sinusoidal_time_encoding(s, self.encoding_dim, self.min_period,
                                           self.max_period, dtype=self.out.weight.dtype)
        return self.forward_encoded(encoded)

    def forward_encoded(self, encoded: torch.Tensor) -> torch.Tensor:
        """Embedding from an already computed encoding ``(B, encoding_dim)`` -> ``(B, out_dim)``."""
        encoded = encoded.to(self.hidden.weight.dtype)
        return self.out(self.activation(self.hidden(encoded)))
