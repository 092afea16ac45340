# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Statistics that map robot units to the policy's normalised space.

Mean / std for every policy, plus min / max and the 1st / 99th percentiles (``q01`` / ``q99``,
LeRobot's ``QUANTILES`` mode, which PI05 uses to put the state into its prompt as 256 bins over
[-1, 1]). The statistics are computed once from the training data, stored inside every
checkpoint (``normalization.json``, and as buffers in a compact policy's weights) and never
recomputed at deployment. Checkpoints written before the quantiles existed load with those
fields None. This module uses numpy only, so the data pipeline can build statistics without
importing torch.
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
_OPTIONAL_KINDS = ("min", "max", "q01", "q99")
"""Statistics a checkpoint may lack (written before they were computed): LeRobot's stats keys."""
_OPTIONAL_FIELDS = tuple(f"{prefix}_{kind}" for prefix in ("state", "action")
                         for kind in _OPTIONAL_KINDS)
_ENVIRONMENT_FIELDS = tuple(f"environment_state_{kind}"
                            for kind in ("mean", "std") + _OPTIONAL_KINDS)
"""Statistics of the environment state (object poses ...): all None when a policy has none."""
_ALL_FIELDS = _FIELDS + _OPTIONAL_FIELDS + _ENVIRONMENT_FIELDS
QUANTILES = (0.01, 0.99)
"""The quantiles stored as ``q01`` / ``q99`` (LeRobot's ``QUANTILES`` normalisation bounds)."""


@dataclasses.dataclass(frozen=True, eq=False)
class NormalizationStats:
    """Per-dimension float32 statistics of state ``(S,)``, action ``(A,)``, env. state ``(E,)``.

    The environment state is LeRobot's ``observation.environment_state`` (optional). Mean and
    std are always there; min / max / q01 / q99 are None in statistics written before they
    were computed. The ``environment_state_*`` fields are None for a policy without one.
    """

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    state_min: np.ndarray | None = None
    state_max: np.ndarray | None = None
    state_q01: np.ndarray | None = None
    state_q99: np.ndarray | None = None
    action_min: np.ndarray | None = None
    action_max: np.ndarray | None = None
    action_q01: np.ndarray | None = None
    action_q99: np.ndarray | None = None
    environment_state_mean: np.ndarray | None = None
    environment_state_std: np.ndarray | None = None
    environment_state_min: np.ndarray | None = None
    environment_state_max: np.ndarray | None = None
    environment_state_q01: np.ndarray | None = None
    environment_state_q99: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in _ALL_FIELDS:
            value = getattr(self, name)
            if value is None and name not in _FIELDS:
                continue
            try:
                array = np.asarray(value, dtype=np.float32).reshape(-1).copy()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"NormalizationStats.{name}: not a list of numbers") from exc
            if not np.all(np.isfinite(array)):
                raise ConfigError(f"NormalizationStats.{name} has non-finite values: {array}")
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if (self.environment_state_mean is None) != (self.environment_state_std is None):
            raise ConfigError("NormalizationStats: environment_state_mean and "
                              "environment_state_std must be given together")
        for prefix in self._prefixes():
            mean, std = getattr(self, f"{prefix}_mean"), getattr(self, f"{prefix}_std")
            if mean.shape != std.shape:
                raise ConfigError(
                    f"NormalizationStats: {prefix}_mean has {mean.size} values but "
                    f"{prefix}_std has {std.size}"
                )
            if np.any(std <= 0):
                raise ConfigError(f"NormalizationStats.{prefix}_std must be > 0: {std}")
            for kind in _OPTIONAL_KINDS:
                value = getattr(self, f"{prefix}_{kind}")
                if value is not None and value.shape != mean.shape:
                    raise ConfigError(
                        f"NormalizationStats: {prefix}_mean has {mean.size} values but "
                        f"{prefix}_{kind} has {value.size}")
            for low, high in (("min", "max"), ("q01", "q99")):
                lo, hi = getattr(self, f"{prefix}_{low}"), getattr(self, f"{prefix}_{high}")
                if (lo is None) != (hi is None):
                    raise ConfigError(f"NormalizationStats: {prefix}_{low} and {prefix}_{high} "
                                      "must be given together")
                if lo is not None and np.any(hi < lo):
                    raise ConfigError(f"NormalizationStats.{prefix}_{high} must be >= "
                                      f"{prefix}_{low}")

    def _prefixes(self) -> tuple[str, ...]:
        if self.environment_state_mean is None:
            return ("state", "action")
        return ("state", "action", "environment_state")

    def has(self, kind: str) -> bool:
        """Whether the state and the action both carry statistic ``kind`` (``q01``, ``min`` ...)."""
        if kind in ("mean", "std"):
            return True
        return all(getattr(self, f"{prefix}_{kind}", None) is not None
                   for prefix in self._prefixes())

    def lerobot_stats(self, prefix: str) -> dict[str, np.ndarray]:
        """Statistics of ``prefix`` (state, action, environment_state) under LeRobot's keys."""
        stats = {kind: getattr(self, f"{prefix}_{kind}") for kind in ("mean", "std")
                 + _OPTIONAL_KINDS}
        return {kind: value for kind, value in stats.items() if value is not None}

    @property
    def state_dim(self) -> int:
        """Number of state dimensions S."""
        return int(self.state_mean.size)

    @property
    def action_dim(self) -> int:
        """Number of action dimensions A."""
        return int(self.action_mean.size)

    @property
    def environment_state_dim(self) -> int:
        """Number of environment-state dimensions E (0: the policy has none)."""
        mean = self.environment_state_mean
        return 0 if mean is None else int(mean.size)

    @classmethod
    def from_arrays(cls, states: Any, actions: Any, *, environment_states: Any = None,
                    min_std: float = DEFAULT_MIN_STD) -> NormalizationStats:
        """Statistics of ``states (N, S)``, ``actions (N, A)``, optional ``(N, E)`` env. states.

        Every std is floored at ``min_std``.

        The quantiles are exact (``np.quantile``, linear interpolation), where LeRobot's dataset
        tools estimate them from histograms. A min..max or q01..q99 range narrower than
        ``2 * min_std`` is widened to that about its middle, for the reason of the std floor.
        """
        if not min_std > 0:
            raise ConfigError(f"min_std={min_std!r}: must be > 0")
        stats = {}
        arrays = [("state", states), ("action", actions)]
        if environment_states is not None:
            arrays.append(("environment_state", environment_states))
        for prefix, data in arrays:
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
            bounds = {"min": array.min(axis=0), "max": array.max(axis=0)}
            bounds["q01"], bounds["q99"] = np.quantile(array, QUANTILES, axis=0)
            for low, high in (("min", "max"), ("q01", "q99")):
                lo, hi = bounds[low], bounds[high]
                narrow = hi - lo < 2 * min_std
                middle = (lo + hi) / 2
                stats[f"{prefix}_{low}"] = np.where(narrow, middle - min_std, lo)
                stats[f"{prefix}_{high}"] = np.where(narrow, middle + min_std, hi)
        return cls(**stats)

    @classmethod
    def identity(cls, state_dim: int, action_dim: int,
                 environment_state_dim: int = 0) -> NormalizationStats:
        """Statistics that leave values unchanged (mean 0, std 1; min / q01 -1, max / q99 1)."""
        bounds = {}
        dims = [("state", state_dim), ("action", action_dim)]
        if environment_state_dim:
            dims.append(("environment_state", environment_state_dim))
            bounds["environment_state_mean"] = np.zeros(environment_state_dim)
            bounds["environment_state_std"] = np.ones(environment_state_dim)
        for prefix, dim in dims:
            for kind in ("min", "q01"):
                bounds[f"{prefix}_{kind}"] = -np.ones(dim)
            for kind in ("max", "q99"):
                bounds[f"{prefix}_{kind}"] = np.ones(dim)
        return cls(np.zeros(state_dim), np.ones(state_dim),
                   np.zeros(action_dim), np.ones(action_dim), **bounds)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-safe mapping of plain float lists (statistics that are None are left out)."""
        return {name: [float(v) for v in getattr(self, name)] for name in _ALL_FIELDS
                if getattr(self, name) is not None}

    @classmethod
    def from_dict(cls, data: dict) -> NormalizationStats:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` naming a missing field.

        Only mean / std are required: older checkpoints have no min / max / quantiles.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"normalisation stats must be a mapping, got {type(data).__name__}")
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ConfigError(f"normalisation stats lack {', '.join(missing)}")
        unknown = sorted(set(data) - set(_ALL_FIELDS))
        if unknown:
            raise ConfigError(f"normalisation stats have unknown field(s) {', '.join(unknown)}")
        return cls(**{name: data[name] for name in _ALL_FIELDS if name in data})

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """Robot-unit state ``(..., S)`` -> normalised state."""
        return (np.asarray(state, np.float32) - self.state_mean) / self.state_std

    def normalize_environment_state(self, environment_state: np.ndarray) -> np.ndarray:
        """Robot-unit environment state ``(..., E)`` -> normalised (z-score)."""
        if self.environment_state_mean is None:
            raise ConfigError("these normalisation stats have no environment state")
        return ((np.asarray(environment_state, np.float32) - self.environment_state_mean)
                / self.environment_state_std)

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        """Robot-unit action ``(..., A)`` -> normalised action."""
        return (np.asarray(action, np.float32) - self.action_mean) / self.action_std

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        """Normalised action ``(..., A)`` -> robot units."""
        return np.asarray(action, np.float32) * self.action_std + self.action_mean

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormalizationStats):
            return NotImplemented
        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (
                a is not None and b is not None and np.array_equal(a, b))

        return all(same(getattr(self, n), getattr(other, n)) for n in _ALL_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable
