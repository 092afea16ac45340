# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline evaluation of trained checkpoints on held-out episodes of fixture bags."""

import numpy as np
import pytest
from evaluation_fixtures import SPLIT_SEED, VAL_FRACTION

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.dataset import split_episodes
from snapflow_ros.data.episodes import load_episodes
from snapflow_ros.evaluation.metrics import DISTRIBUTION_KEYS, SUMMARY_KEYS
from snapflow_ros.evaluation.offline import (
    OfflineEvalConfig,
    evaluate_checkpoints,
    result_key,
    subsample_frames,
)

FAST = dict(samples=24, step_counts=(1, 2), spread_seeds=2, spread_samples=8,
            latency_calls=2, trajectory_episodes=1, trajectory_max_steps=10)


@pytest.fixture(scope="module")
def episodes(demo_bags):
    bag_dir, bags = demo_bags
    config = bags[0].config(image_height=16, image_width=16)
    loaded, _ = load_episodes(bag_dir, config, progress=False)
    return loaded


@pytest.fixture(scope="module")
def result(trained_runs, episodes):
    return evaluate_checkpoints(trained_runs, episodes, progress=False, val_fraction=VAL_FRACTION,
                                split_seed=SPLIT_SEED, **FAST)


def test_every_step_count_and_sampler_has_every_metric(result):
    teacher = result["checkpoints"]["teacher"]
    snap = result["checkpoints"]["snap"]
    assert teacher["stage"] == "teacher" and snap["stage"] == "snapflow"
    assert teacher["policy_type"] == snap["policy_type"] == "compact"
    # A teacher's samplers coincide (phi_s is zero): one result per step count, Euler.
    assert set(teacher["results"]) == {"1", "2"}
    assert {r["mode"] for r in teacher["results"].values()} == {"euler"}
    assert set(snap["results"]) == {"1", "1_euler", "2", "2_euler"}
    assert snap["results"]["2"]["mode"] == "jump"
    for entry in (teacher, snap):
        for metrics in entry["results"].values():
            assert set(SUMMARY_KEYS) <= set(metrics)
            assert set(DISTRIBUTION_KEYS) <= set(metrics)
            assert metrics["samples_per_frame"] == 8
            assert metrics["best_of_k_mse_mean"] <= metrics["mse_mean"]
            # 24 drawn, and up to 24 more whose observation recurs in another episode (the
            # fixture's demonstrations are copies of one).
            assert metrics["num_samples"] == 48
            assert len(metrics["per_sample_mse"]) == 48
            assert len(metrics["error_by_chunk_position"]) == 5
            assert [j["name"] for j in metrics["per_joint_mse"]] == ["shoulder", "elbow",
                                                                     "gripper"]
            assert metrics["mse_mean"] > 0 and metrics["spread"] > 0
            assert metrics["latency_ms_p50"] > 0


def test_only_the_validation_episodes_of_training_are_scored(result, episodes):
    train, val = split_episodes(episodes, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    assert result["split"] == "validation"
    scored = [e["source"] for e in result["episodes"]]
    assert scored == [str(e.source) for e in val]
    assert not set(scored) & {str(e.source) for e in train}
    positions = {id(e): i for i, e in enumerate(episodes)}
    assert [e["index"] for e in result["episodes"]] == [positions[id(e)] for e in val]


def test_all_episodes_scores_every_episode(trained_runs, episodes):
    out = evaluate_checkpoints({"teacher": trained_runs["teacher"]}, episodes, progress=False,
                               all_episodes=True, **{**FAST, "step_counts": (1,)})
    assert out["split"] == "all"
    assert len(out["episodes"]) == len(episodes)


def test_same_seed_same_numbers_and_frames_shared_by_checkpoints(result, trained_runs,
                                                                 episodes):
    again = evaluate_checkpoints({"teacher": trained_runs["teacher"]}, episodes,
                                 progress=False, val_fraction=VAL_FRACTION,
                                 split_seed=SPLIT_SEED, **FAST)
    first = result["checkpoints"]["teacher"]["results"]["1"]
    second = again["checkpoints"]["teacher"]["results"]["1"]
    assert first["per_sample_mse"] == second["per_sample_mse"]
    assert first["spread"] == second["spread"]


def test_trajectories_hold_recorded_and_first_predicted_actions(result):
    (trajectory,) = result["trajectories"]
    recorded = np.asarray(trajectory["recorded"])
    assert recorded.shape == (10, 3)
    assert set(trajectory["predicted"]) == {"teacher/1", "teacher/2", "snap/1", "snap/2"}
    assert all(np.asarray(v).shape == (10, 3) for v in trajectory["predicted"].values())


def test_a_checkpoint_for_other_joints_is_refused_by_name(trained_runs, demo_bags, tmp_path):
    from bag_fixtures import write_demo_bag

    from snapflow_ros.policies.base import CheckpointMismatchError

    bag = write_demo_bag(tmp_path / "other", n_steps=20, image_size=(16, 16),
                         joint_names=("shoulder", "elbow", "wrist"))
    other, _ = load_episodes(bag.path, bag.config(), progress=False)
    with pytest.raises(CheckpointMismatchError, match="wrist"):
        evaluate_checkpoints({"teacher": trained_runs["teacher"]}, other, progress=False,
                             all_episodes=True, **FAST)


def test_subsample_is_deterministic_distinct_and_within_episodes():
    frames = subsample_frames([5, 3, 4], 8, seed=1)
    assert frames == subsample_frames([5, 3, 4], 8, seed=1)
    assert len(set(frames)) == 8
    assert all(f < [5, 3, 4][e] for e, f in frames)
    assert frames == sorted(frames)
    assert len(subsample_frames([2, 2], 100, seed=0)) == 4


def test_config_checks():
    assert result_key(4, "jump", "jump") == "4"
    assert result_key(4, "euler", "jump") == "4_euler"
    with pytest.raises(ConfigError, match="holds out nothing"):
        OfflineEvalConfig(val_fraction=0.0)
    with pytest.raises(ConfigError, match="duplicates"):
        OfflineEvalConfig(step_counts=(1, 1))
    with pytest.raises(ConfigError, match="mode"):
        OfflineEvalConfig(modes=("rk4",))
