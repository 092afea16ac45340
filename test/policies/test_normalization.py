# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of NormalizationStats: statistics, quantiles, std floor, JSON round trip, validation."""

import json

import numpy as np
import pytest

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.normalization import DEFAULT_MIN_STD, NormalizationStats


def test_from_arrays_gives_per_dimension_mean_and_std():
    rng = np.random.default_rng(0)
    states = rng.normal([1.0, -2.0, 0.5], [0.5, 2.0, 0.1], size=(5000, 3))
    actions = rng.normal([0.0, 3.0], [1.0, 0.2], size=(5000, 2))
    stats = NormalizationStats.from_arrays(states, actions)
    np.testing.assert_allclose(stats.state_mean, states.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.state_std, states.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats.action_std, actions.std(0), rtol=1e-5)
    assert stats.state_mean.dtype == np.float32 and stats.state_dim == 3 and stats.action_dim == 2
    normalized = stats.normalize_state(states)
    np.testing.assert_allclose(normalized.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(0), 1.0, atol=1e-4)


def test_constant_joint_is_floored_so_sensor_noise_stays_small():
    states = np.zeros((100, 2))
    states[:, 0] = np.linspace(-1, 1, 100)  # joint 1 never moved in the demonstrations
    stats = NormalizationStats.from_arrays(states, np.ones((100, 1)))
    assert stats.state_std[1] == pytest.approx(DEFAULT_MIN_STD)
    assert stats.action_std[0] == pytest.approx(DEFAULT_MIN_STD)
    # A millimetre of noise on the frozen joint stays a modest normalised value.
    assert abs(stats.normalize_state(np.array([0.0, 1e-3]))[1]) < 0.2


def test_action_round_trip_in_robot_units():
    rng = np.random.default_rng(1)
    stats = NormalizationStats.from_arrays(rng.normal(size=(50, 3)), rng.normal(5, 3, (50, 4)))
    actions = rng.normal(5, 3, (7, 4)).astype(np.float32)
    np.testing.assert_allclose(stats.unnormalize_action(stats.normalize_action(actions)), actions,
                               rtol=1e-5, atol=1e-5)


def test_dict_round_trip_is_json_safe_and_exact():
    rng = np.random.default_rng(2)
    stats = NormalizationStats.from_arrays(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)))
    text = json.dumps(stats.to_dict())
    restored = NormalizationStats.from_dict(json.loads(text))
    assert restored == stats
    for name in ("state_mean", "state_std", "action_mean", "action_std"):
        assert np.array_equal(getattr(restored, name), getattr(stats, name))


def test_arrays_are_read_only_so_shared_stats_cannot_be_changed_by_accident():
    stats = NormalizationStats.identity(2, 2)
    with pytest.raises(ValueError):
        stats.action_std[0] = 5.0


@pytest.mark.parametrize("change, message", [
    ({"state_std": [1.0]}, "state_std has 1"),
    ({"action_mean": [0.0, float("nan")]}, "non-finite"),
    ({"action_std": [1.0, 0.0]}, "must be > 0"),
])
def test_invalid_stats_are_rejected_by_name(change, message):
    data = NormalizationStats.identity(2, 2).to_dict()
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        NormalizationStats.from_dict(data)


def test_from_dict_names_missing_and_unknown_fields():
    data = NormalizationStats.identity(1, 1).to_dict()
    del data["action_std"]
    with pytest.raises(ConfigError, match="action_std"):
        NormalizationStats.from_dict(data)
    with pytest.raises(ConfigError, match="bogus"):
        NormalizationStats.from_dict({**NormalizationStats.identity(1, 1).to_dict(), "bogus": 1})


def test_from_arrays_rejects_nan_rows_naming_the_column():
    states = np.zeros((4, 3))
    states[2, 1] = np.nan
    with pytest.raises(ConfigError, match=r"column\(s\) \[1\]"):
        NormalizationStats.from_arrays(states, np.zeros((4, 1)))
    with pytest.raises(ConfigError, match="non-empty"):
        NormalizationStats.from_arrays(np.zeros((0, 3)), np.zeros((0, 1)))


def test_quantiles_min_and_max_are_stored_as_lerobot_computes_them():
    rng = np.random.default_rng(3)
    states = rng.normal([0.5, -1.0], [0.3, 2.0], size=(4000, 2))
    actions = rng.uniform(-2.0, 3.0, size=(4000, 1))
    stats = NormalizationStats.from_arrays(states, actions)
    np.testing.assert_allclose(stats.state_q01, np.quantile(states, 0.01, axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.state_q99, np.quantile(states, 0.99, axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.action_min, actions.min(0), rtol=1e-5)
    np.testing.assert_allclose(stats.action_max, actions.max(0), rtol=1e-5)
    inside = (states >= stats.state_q01) & (states <= stats.state_q99)
    assert inside.mean() == pytest.approx(0.98, abs=0.005)
    assert stats.has("q01") and stats.has("min")
    lerobot = stats.lerobot_stats("state")
    assert sorted(lerobot) == ["max", "mean", "min", "q01", "q99", "std"]
    restored = NormalizationStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert restored == stats and np.array_equal(restored.action_q99, stats.action_q99)


def test_statistics_written_before_the_quantiles_still_load():
    old = {"state_mean": [0.0, 1.0], "state_std": [1.0, 2.0], "action_mean": [0.5],
           "action_std": [0.1]}
    stats = NormalizationStats.from_dict(old)
    assert stats.state_q01 is None and not stats.has("q01") and stats.has("mean")
    assert sorted(stats.to_dict()) == sorted(old)  # nothing invented on the way back
    assert sorted(stats.lerobot_stats("action")) == ["mean", "std"]
    assert NormalizationStats.identity(2, 1).has("q99")


def test_a_constant_joint_gets_a_floored_quantile_range_too():
    states = np.zeros((100, 2))
    states[:, 0] = np.linspace(-1, 1, 100)
    stats = NormalizationStats.from_arrays(states, np.ones((100, 1)))
    assert stats.state_q99[1] - stats.state_q01[1] == pytest.approx(2 * DEFAULT_MIN_STD)
    assert stats.state_min[1] == pytest.approx(-DEFAULT_MIN_STD)
    assert stats.state_q01[0] == pytest.approx(np.quantile(states[:, 0], 0.01), rel=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"state_q01": [0.0, 0.0]}, "state_q01 and state_q99 must be given together"),
    ({"action_q01": [0.0], "action_q99": [0.0, 1.0]}, "action_q99 has 2"),
    ({"state_min": [1.0, 1.0], "state_max": [0.0, 2.0]}, "state_max must be >= state_min"),
])
def test_invalid_quantiles_are_rejected_by_name(change, message):
    data = {**NormalizationStats.identity(2, 1).to_dict()}
    for key in ("state_q01", "state_q99", "action_q01", "action_q99", "state_min", "state_max"):
        data.pop(key)
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        NormalizationStats.from_dict(data)
