# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Mean / standard-deviation statistics that map robot units to the policy's normalised space.

The statistics are computed once from the training data, stored inside every checkpoint
(``normalization.json`` and as buffers in the weights) and never recomputed at deployment. This
module uses numpy only, so the data pipeline can build statistics without importing torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError

DEFAULT_MIN_STD = 1e-2
"""Floor on a standard deviation (robot units): a joint that never moved in the demonstrations
must not turn a millimetre of sensor noise into a huge normalised input."""

_FIELDS = ("state_mean", "state_std", "action_mean", "action_std")


@dataclasses.dataclass(frozen=True, eq=False)
class NormalizationStats:
    """Per-dimension mean and std of the state ``(S,)`` and the action ``(A,)``, float32."""

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            try:
                array = np.asarray(value, dtype=np.float32).reshape(-1).copy()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"NormalizationStats.{name}: not a list of numbers") from exc
            if not np.all(np.isfinite(array)):
                raise ConfigError(f"NormalizationStats.{name} has non-finite values: {array}")
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        for prefix in ("state", "action"):
            mean, std = getattr(self, f"{prefix}_mean"), getattr(self, f"{prefix}_std")
            if mean.shape != std.shape:
                raise ConfigError(
                    f"NormalizationStats: {prefix}_mean has {mean.size} values but "
                    f"{prefix}_std has {std.size}"
                )
            if np.any(std <= 0):
                raise ConfigError(f"NormalizationStats.{prefix}_std must be > 0: {std}")

    @property
    def state_dim(self) -> int:
        """Number of state dimensions S."""
        return int(self.state_mean.size)

    @property
    def action_dim(self) -> int:
        """Number of action dimensions A."""
        return int(self.action_mean.size)

    @classmethod
    def from_arrays(cls, states: Any, actions: Any, *,
                    min_std: float = DEFAULT_MIN_STD) -> NormalizationStats:
        """Statistics of ``states (N, S)`` and ``actions (N, A)``; std floored at ``min_std``."""
        if not min_std > 0:
            raise ConfigError(f"min_std={min_std!r}: must be > 0")
        stats = {}
        for prefix, data in (("state", states), ("action", actions)):
            array = np.asarray(data, dtype=np.float64)
            if array.ndim != 2 or array.shape[0] == 0:
                raise ConfigError(
                    f"NormalizationStats.from_arrays: {prefix}s must be a non-empty (N, D) "
                    f"array, got shape {array.shape}"
                )
            if not np.all(np.isfinite(array)):
                bad = np.unique(np.nonzero(~np.isfinite(array))[1]).tolist()
                raise ConfigError(f"{prefix}s contain NaN or inf in column(s) {bad}")
            stats[f"{prefix}_mean"] = array.mean(axis=0)
            stats[f"{prefix}_std"] = np.maximum(array.std(axis=0), min_std)
        return cls(**stats)

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> NormalizationStats:
        """Statistics that leave values unchanged (mean 0, std 1)."""
        return cls(np.zeros(state_dim), np.ones(state_dim),
                   np.zeros(action_dim), np.ones(action_dim))

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-safe mapping of plain float lists."""
        return {name: [float(v) for v in getattr(self, name)] for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict) -> NormalizationStats:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` naming a missing field."""
        if not isinstance(data, dict):
            raise ConfigError(f"normalisation stats must be a mapping, got {type(data).__name__}")
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ConfigError(f"normalisation stats lack {', '.join(missing)}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"normalisation stats have unknown field(s) {', '.join(unknown)}")
        return cls(**{name: data[name] for name in _FIELDS})

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """Robot-unit state ``(..., S)`` -> normalised state."""
        return (np.asarray(state, np.float32) - self.state_mean) / self.state_std

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        """Robot-unit action ``(..., A)`` -> normalised action."""
        return (np.asarray(action, np.float32) - self.action_mean) / self.action_std

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        """Normalised action ``(..., A)`` -> robot units."""
        return np.asarray(action, np.float32) * self.action_std + self.action_mean

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormalizationStats):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable
