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


# ------------------------------------------------------------- K samples per frame

def _two_truths(h=4, a=2):
    """Two recorded chunks for one observation: +1 everywhere and -1 everywhere."""
    return np.stack([np.ones((h, a)), -np.ones((h, a))])


def test_a_sampler_that_averages_the_truths_is_always_between_modes_and_covers_none():
    truths = _two_truths()
    samples = np.repeat(truths.mean(axis=0)[None], 8, axis=0)  # (K, H, A): the mean, K times
    summary = metrics.mode_summary([samples] * 3, [truths] * 3, [None] * 3)
    assert summary == {"between_modes_share": 1.0, "mode_coverage": 0.0,
                       "multi_truth_frames": 3}


def test_a_sampler_that_lands_on_each_truth_is_never_between_modes_and_covers_both():
    truths = _two_truths()
    rng = np.random.default_rng(0)
    frames = [truths[np.arange(8) % 2] + rng.normal(0, 0.05, (8, 4, 2)) for _ in range(5)]
    summary = metrics.mode_summary(frames, [truths] * 5, [None] * 5)
    assert summary == {"between_modes_share": 0.0, "mode_coverage": 1.0,
                       "multi_truth_frames": 5}
    # All K samples on one truth: no sample between modes, but one mode only.
    one_mode = metrics.mode_summary([np.repeat(truths[:1], 8, axis=0)], [truths], [None])
    assert one_mode["between_modes_share"] == 0.0 and one_mode["mode_coverage"] == 0.0


def test_between_modes_is_the_middle_half_of_the_segment_and_uses_the_two_nearest_truths():
    truths = _two_truths(h=1, a=1)  # +1 and -1
    samples = np.array([0.45, 0.55, -0.45, 0.0, 1.2, -0.9]).reshape(-1, 1, 1)
    between, nearest = metrics.mode_assignment(samples, truths)
    assert between.tolist() == [True, False, True, True, False, False]
    assert nearest[[1, 4]].tolist() == [0, 0] and nearest[5] == 1
    # A far third truth does not change which midpoint counts.
    three = np.concatenate([truths, np.full((1, 1, 1), 10.0)])
    assert metrics.mode_assignment(samples, three)[0].tolist() == between.tolist()
    # Only the valid steps count: a wild value on an invalid step changes nothing.
    wide = np.concatenate([samples, np.full_like(samples, 50.0)], axis=1)
    wide_truths = np.concatenate([truths, truths], axis=1)
    assert metrics.mode_assignment(wide, wide_truths, np.array([True, False]))[0].tolist() == \
        between.tolist()


def test_no_frame_with_several_truths_leaves_the_mode_metrics_empty():
    assert metrics.mode_summary([], [], []) == {"between_modes_share": None,
                                                "mode_coverage": None, "multi_truth_frames": 0}


def test_truths_closer_than_the_threshold_are_one_truth():
    base = np.zeros((4, 2))
    truths = np.stack([base, base + 0.01, base + 1.0, base + 1.02, base - 1.0])
    pads = np.zeros((5, 4), bool)
    assert metrics.distinct_truths(truths, pads, threshold=0.01) == [0, 2, 4]
    assert metrics.distinct_truths(truths, pads, threshold=10.0) == [0]
    # Compared over the steps valid in both: a difference past one episode's end is ignored.
    late = np.stack([base, np.concatenate([base[:2], base[2:] + 5.0])])
    assert metrics.distinct_truths(late, np.array([[0, 0, 0, 0], [0, 0, 1, 1]], bool),
                                   threshold=0.01) == [0]


def test_best_of_k_is_never_above_any_single_draw_and_k1_disables_the_metrics():
    recorded = _recording(n=6)
    rng = np.random.default_rng(3)
    samples = recorded[:, None] + rng.normal(0, 0.2, (6, 5, 4, 3))
    is_pad = np.zeros((6, 4), bool)
    is_pad[0, 2:] = True
    best = metrics.best_of_k_mse(samples, recorded, is_pad)
    for k in range(5):
        assert np.all(best <= metrics.per_sample_mse(samples[:, k], recorded, is_pad) + 1e-15)
    summary = metrics.summarize_samples(samples, recorded, is_pad)
    assert set(summary) == set(metrics.DISTRIBUTION_KEYS)
    assert summary["samples_per_frame"] == 5
    assert summary["best_of_k_mse_mean"] == pytest.approx(best.mean())
    assert summary["best_of_k_mse_mean"] <= metrics.per_sample_mse(samples[:, 0], recorded,
                                                                   is_pad).mean()
    assert summary["sample_spread"] == pytest.approx(
        metrics.prediction_spread(samples.swapaxes(0, 1), is_pad).mean())
    assert summary["between_modes_share"] is None  # filled only where truths are known
    single = metrics.summarize_samples(samples[:, :1], recorded, is_pad)
    assert single == {**dict.fromkeys(metrics.DISTRIBUTION_KEYS), "samples_per_frame": 1}
    assert json.loads(json.dumps(summary)) == summary
