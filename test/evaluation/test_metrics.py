# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline metrics on hand-made chunks: exact values a user can check by hand."""

import json

import numpy as np
import pytest

from snapflow_ros.evaluation import metrics


def _recording(n=5, h=4, a=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, a))


def test_a_perfect_predictor_scores_zero_error_and_full_similarity():
    recorded = _recording()
    summary = metrics.summarize(recorded.copy(), recorded, action_names=["a", "b", "c"])
    assert summary["mse_mean"] == 0.0
    assert summary["mse_p95"] == 0.0
    assert summary["mse_std"] == 0.0
    assert summary["cos_sim"] == pytest.approx(1.0)
    assert [j["mse"] for j in summary["per_joint_mse"]] == [0.0, 0.0, 0.0]
    assert [j["name"] for j in summary["per_joint_mse"]] == ["a", "b", "c"]
    assert summary["error_by_chunk_position"] == [0.0] * 4
    assert summary["num_samples"] == 5


def test_per_sample_mse_is_the_mean_squared_error_of_each_chunk():
    recorded = np.zeros((2, 2, 2))
    predicted = np.zeros((2, 2, 2))
    predicted[0] = 1.0            # every element off by 1 -> 1
    predicted[1, 0, 0] = np.sqrt(2.0)  # one element of four, squared error 2 -> 0.5
    np.testing.assert_allclose(metrics.per_sample_mse(predicted, recorded), [1.0, 0.5])
    summary = metrics.summarize(predicted, recorded)
    assert summary["mse_mean"] == pytest.approx(0.75)
    assert summary["mse_median"] == pytest.approx(0.75)
    assert summary["mse_std"] == pytest.approx(0.25)
    assert summary["mse_p95"] == pytest.approx(0.5 + 0.95 * 0.5)


def test_padded_steps_past_the_episode_end_are_not_scored():
    recorded = np.zeros((1, 3, 2))
    predicted = np.zeros((1, 3, 2))
    predicted[0, 2] = 100.0  # garbage where the episode has ended
    is_pad = np.array([[False, False, True]])
    assert metrics.per_sample_mse(predicted, recorded, is_pad)[0] == 0.0
    summary = metrics.summarize(predicted, recorded, is_pad)
    assert summary["mse_mean"] == 0.0
    assert summary["error_by_chunk_position"] == [0.0, 0.0, None]
    assert [j["mse"] for j in summary["per_joint_mse"]] == [0.0, 0.0]


def test_a_fully_padded_sample_has_no_mse_and_is_left_out_of_every_summary():
    recorded = np.zeros((3, 2, 1))
    predicted = np.zeros((3, 2, 1))
    predicted[0] = 1.0  # MSE 1
    predicted[1] = 50.0  # only padding: nothing to score
    is_pad = np.array([[False, False], [True, True], [False, True]])
    mse = metrics.per_sample_mse(predicted, recorded, is_pad)
    assert mse[0] == 1.0 and np.isnan(mse[1]) and mse[2] == 0.0
    summary = metrics.summarize(predicted, recorded, is_pad)
    # The mean of the scored samples (1 and 0), not of three with a 0 or NaN in for the padded.
    assert summary["mse_mean"] == pytest.approx(0.5) and summary["num_samples"] == 2
    with pytest.raises(ValueError, match="no sample"):
        metrics.summarize(predicted[1:2], recorded[1:2], is_pad[1:2])


def test_per_joint_and_chunk_position_errors_locate_the_mistake():
    recorded = np.zeros((4, 3, 2))
    predicted = recorded.copy()
    predicted[:, 2, 1] = 2.0  # the second joint is wrong at the last chunk position only
    joints = metrics.per_joint_mse(predicted, recorded)
    np.testing.assert_allclose(joints, [0.0, 4.0 / 3.0])
    by_position = metrics.error_by_chunk_position(predicted, recorded)
    np.testing.assert_allclose(by_position, [0.0, 0.0, 2.0])


def test_cosine_similarity_of_opposite_and_scaled_chunks():
    recorded = np.ones((2, 2, 2))
    predicted = np.stack([-np.ones((2, 2)), 3 * np.ones((2, 2))])
    np.testing.assert_allclose(metrics.per_sample_cosine_similarity(predicted, recorded),
                               [-1.0, 1.0])
    assert metrics.summarize(predicted, recorded)["cos_sim"] == pytest.approx(0.0)


def test_spread_is_the_mean_per_element_std_across_seeds():
    base = np.zeros((2, 3, 2))
    samples = np.stack([base - 0.5, base + 0.5])  # std across the two seeds: 0.5 everywhere
    np.testing.assert_allclose(metrics.prediction_spread(samples), [0.5, 0.5])
    collapsed = np.stack([base, base, base])
    np.testing.assert_allclose(metrics.prediction_spread(collapsed), [0.0, 0.0])
    summary = metrics.summarize(base, base, spread_samples=samples)
    assert summary["spread"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="K>=2"):
        metrics.prediction_spread(samples[:1])


def test_latency_percentiles():
    p50, p95 = metrics.latency_percentiles_ms(np.arange(1, 101, dtype=float))
    assert p50 == pytest.approx(50.5)
    assert p95 == pytest.approx(95.05)
    assert metrics.latency_percentiles_ms([]) == (None, None)


def test_summary_is_json_serialisable_with_every_key():
    recorded = _recording()
    predicted = recorded + 0.1
    summary = metrics.summarize(predicted, recorded, np.zeros((5, 4), bool),
                                spread_samples=np.stack([predicted, recorded]),
                                latencies_ms=[1.0, 2.0, 3.0])
    assert set(metrics.SUMMARY_KEYS) <= set(summary)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["mse_mean"] == pytest.approx(0.01)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"\(N, H, A\)"):
        metrics.per_sample_mse(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="action names"):
        metrics.summarize(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), action_names=["x"])
