# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Distribution metrics of the offline evaluation on a bimodal data set with a known answer.

Two held-out episodes start from the same observation and were recorded with opposite actions
(+1 and -1): each of their frames has two valid truths. A third episode has another observation
and one truth. The policy is the exact flow-matching velocity of the two-point action
distribution: Euler in one step returns the conditional mean (0, between the modes), many steps
land on a mode.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from snapflow_ros.data.episodes import Episode
from snapflow_ros.evaluation.metrics import DISTRIBUTION_KEYS
from snapflow_ros.evaluation.offline import evaluate_checkpoints, matching_episodes

STEPS, CHUNK, ACTIONS = 12, 4, 2
FAST = dict(all_episodes=True, samples=36, spread_seeds=0, latency_calls=0,
            trajectory_episodes=0, samples_per_frame=8, distinct_truth_mse=0.5)


class TwoModePolicy:
    """The marginal velocity of flow matching onto chunks of all ``+1`` or all ``-1``."""

    chunk_size, action_dim, device = CHUNK, ACTIONS, torch.device("cpu")

    def __init__(self, modes=(1.0, -1.0)):
        self.modes = torch.tensor(modes).view(-1, 1, 1, 1).expand(-1, 1, CHUNK, ACTIONS)

    def encode(self, batch):
        return {"state": batch["state"]}

    def select_context(self, context, index):
        return {"state": context["state"].index_select(0, index)}

    def velocity(self, x, s, t, context):
        t = t.view(-1, 1, 1)
        # Posterior weight of each mode given x_t = (1 - t) x0 + t eps.
        logits = -((x[None] - (1 - t[None]) * self.modes) ** 2).sum(dim=(2, 3)) / (
            2 * t.view(1, -1) ** 2)
        weights = torch.softmax(logits, dim=0)[..., None, None]
        return (x - (weights * self.modes).sum(dim=0)) / t

    def to_robot_actions(self, x):
        return x


def _episode(name, action, state_offset=0.0, environment=0.3):
    state = np.stack([np.linspace(0, 1, STEPS), np.full(STEPS, 0.5)], axis=1) + state_offset
    return Episode(images={"top": np.zeros((STEPS, 8, 8, 3), np.uint8)},
                   state=state.astype(np.float32),
                   action=np.full((STEPS, ACTIONS), action, np.float32),
                   timestamps_ns=np.arange(STEPS, dtype=np.int64) * 20_000_000, task="",
                   source=Path(name), state_names=("a", "b"), action_names=("a", "b"),
                   rate_hz=50.0, environment_state=np.full((STEPS, 1), environment, np.float32),
                   environment_state_names=("cube_x",))


@pytest.fixture
def episodes():
    return [_episode("left", 1.0), _episode("right", -1.0), _episode("other", 1.0, 5.0)]


@pytest.fixture
def stub_checkpoints(monkeypatch):
    """Checkpoint loading replaced by the analytic two-mode policy (a teacher)."""
    import snapflow_ros.policies.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "read_checkpoint_info", lambda path: {
        "checkpoint_dir": str(path), "config": {"policy_type": "stub"},
        "info": {"stage": "teacher", "step": 0}})
    monkeypatch.setattr(checkpoint, "load_policy", lambda path, **_: TwoModePolicy())
    return {"teacher": "unused"}


def test_one_step_returns_the_mean_between_the_modes_and_many_steps_cover_both(
        stub_checkpoints, episodes):
    out = evaluate_checkpoints(stub_checkpoints, episodes, progress=False,
                               step_counts=(1, 20), **FAST)
    results = out["checkpoints"]["teacher"]["results"]
    one, many = results["1"], results["20"]
    assert one["multi_truth_frames"] == many["multi_truth_frames"] == 2 * STEPS
    assert one["between_modes_share"] == 1.0 and one["mode_coverage"] == 0.0
    assert one["sample_spread"] == pytest.approx(0.0, abs=1e-6)
    assert many["between_modes_share"] == 0.0 and many["mode_coverage"] >= 0.9
    assert many["sample_spread"] > 0.5
    # The mean of +1 and -1 is 1 away from every truth; the best of 8 draws almost always
    # finds the recorded one, which the single-draw MSE does only half the time.
    assert one["mse_mean"] == pytest.approx(1.0, abs=1e-5)
    assert many["best_of_k_mse_mean"] < 0.1 < many["mse_mean"]
    for metrics in results.values():
        assert metrics["best_of_k_mse_mean"] <= metrics["mse_mean"]
    assert out["multi_truth"]["frames_with_matching_observation"] == 2 * STEPS
    assert out["multi_truth"]["environment_state_compared"]


def test_the_distinct_truth_threshold_defaults_to_the_teachers_precision(stub_checkpoints,
                                                                         episodes):
    out = evaluate_checkpoints(stub_checkpoints, episodes, progress=False, step_counts=(1, 20),
                               **{**FAST, "distinct_truth_mse": 0.0})
    multi = out["multi_truth"]
    assert multi["distinct_truth_mse_source"] == "10 x the lowest teacher median best-of-K MSE"
    assert 0 <= multi["distinct_truth_mse"] < 1.0
    assert out["checkpoints"]["teacher"]["results"]["1"]["multi_truth_frames"] == 2 * STEPS
    # Above the truths' own difference (MSE 4) they count as one truth: nothing is multimodal.
    wide = evaluate_checkpoints(stub_checkpoints, episodes, progress=False, step_counts=(1,),
                                **{**FAST, "distinct_truth_mse": 5.0})
    metrics = wide["checkpoints"]["teacher"]["results"]["1"]
    assert metrics["multi_truth_frames"] == 0
    assert metrics["between_modes_share"] is None and metrics["mode_coverage"] is None


def test_only_same_observations_at_the_same_step_are_other_truths(episodes):
    frames = [(0, 3), (1, 3), (2, 3)]
    assert matching_episodes(episodes, [0, 1, 2], frames, 1e-6) == [[1], [0], []]
    # The environment state (the scene) counts: a moved cube is another observation.
    moved = [episodes[0], _episode("moved", -1.0, environment=0.31), episodes[2]]
    assert matching_episodes(moved, [0, 1, 2], frames, 1e-6) == [[], [], []]
    # Episodes outside the scored set are never truths; a shorter episode has no such step.
    assert matching_episodes(episodes, [0, 2], [(0, 3)], 1e-6) == [[]]
    short = [episodes[0], Episode(**{**episodes[1].__dict__, **_truncated(episodes[1], 3)})]
    assert matching_episodes(short, [0, 1], [(0, 2), (0, 5)], 1e-6) == [[1], []]


def _truncated(episode, steps):
    return {"images": {k: v[:steps] for k, v in episode.images.items()},
            "state": episode.state[:steps], "action": episode.action[:steps],
            "timestamps_ns": episode.timestamps_ns[:steps],
            "environment_state": episode.environment_state[:steps]}


def test_same_seed_same_samples_and_one_sample_per_frame_disables_the_metrics(
        stub_checkpoints, episodes):
    first = evaluate_checkpoints(stub_checkpoints, episodes, progress=False,
                                 step_counts=(4,), **FAST)
    again = evaluate_checkpoints(stub_checkpoints, episodes, progress=False,
                                 step_counts=(4,), **FAST)
    assert first["checkpoints"] == again["checkpoints"]
    off = evaluate_checkpoints(stub_checkpoints, episodes, progress=False, step_counts=(4,),
                               **{**FAST, "samples_per_frame": 1})
    metrics = off["checkpoints"]["teacher"]["results"]["4"]
    assert metrics["samples_per_frame"] == 1
    assert all(metrics[k] is None for k in DISTRIBUTION_KEYS if k != "samples_per_frame")
    assert off["multi_truth"] is None
    # The scored prediction is the first of the K draws: K changes no MSE.
    assert metrics["per_sample_mse"] == first["checkpoints"]["teacher"]["results"]["4"][
        "per_sample_mse"]


# ------------------------------------------------------- trained checkpoints, real bags

def test_k_draws_of_a_trained_policy_match_one_call_per_noise(trained_runs, demo_bags):
    from snapflow_ros.data.episodes import load_episodes
    from snapflow_ros.evaluation import offline
    from snapflow_ros.policies.checkpoint import load_policy

    bag_dir, bags = demo_bags
    loaded, _ = load_episodes(bag_dir, bags[0].config(image_height=16, image_width=16),
                              progress=False)
    policy = load_policy(trained_runs["snap"], device="cpu")
    frames = [(0, 0), (0, 7), (1, 29), (2, 3), (4, 12)]
    config = offline.OfflineEvalConfig(batch_size=6)  # 2 frames x 3 draws per pass
    noise = offline._noise(len(frames), policy, 5, draws=3)
    together = offline._predict_samples(policy, loaded, frames, config, steps=2, mode="jump",
                                        noise=noise, device=torch.device("cpu"))
    assert together.shape == (5, 3, policy.chunk_size, 3)
    for k in range(3):
        one = offline._predict(policy, loaded, frames, config, steps=2, mode="jump",
                               noise=noise[:, k], device=torch.device("cpu"))
        np.testing.assert_allclose(together[:, k], one, rtol=1e-5, atol=1e-6)
    assert np.abs(together[:, 0] - together[:, 1]).max() > 1e-4  # the draws differ


def test_snapflow_eval_reports_the_distribution_metrics(trained_runs, demo_bags, tmp_path):
    import json

    from evaluation_fixtures import run_cli

    out_json, out_report = tmp_path / "eval.json", tmp_path / "report"
    code, stdout, stderr = run_cli([
        "eval", "--checkpoint", f"T={trained_runs['teacher']}",
        "--checkpoint", f"S={trained_runs['snap']}", "--steps", "1,2", "--samples", "12",
        "--samples-per-frame", "3", "--spread-seeds", "0", "--latency-calls", "0",
        "--no-progress", "--json", str(out_json), "--report", str(out_report)])
    assert code == 0, stderr
    result = json.loads(out_json.read_text())
    assert result["config"]["samples_per_frame"] == 3
    # The fixture bags are five recordings of one identical demonstration: every frame's
    # observation recurs in the other held-out episode, but with the same chunk, so no frame
    # has a second truth. Frames with a matching observation are all scored, beyond the 12
    # drawn.
    assert result["multi_truth"]["frames_with_matching_observation"] > 12
    assert not result["multi_truth"]["environment_state_compared"]
    assert "matched on the joint state alone" in (out_report / "report.md").read_text()
    for entry in result["checkpoints"].values():
        for metrics in entry["results"].values():
            assert metrics["samples_per_frame"] == 3
            assert 0 < metrics["best_of_k_mse_mean"] <= metrics["mse_mean"]
            assert metrics["sample_spread"] > 0
            assert metrics["multi_truth_frames"] == 0 and metrics["mode_coverage"] is None
    assert "| best-of-K MSE | between modes | mode coverage | sample spread |" in stdout
    assert (out_report / "modes_vs_steps.png").is_file()


def test_a_trained_policy_on_frames_with_two_recorded_truths(trained_runs, demo_bags):
    import dataclasses

    from snapflow_ros.data.episodes import load_episodes

    bag_dir, bags = demo_bags
    loaded, _ = load_episodes(bag_dir, bags[0].config(image_height=16, image_width=16),
                              progress=False)
    # The same scene recorded twice, the second time with every action 0.5 higher.
    twin = dataclasses.replace(loaded[0], action=loaded[0].action + 0.5,
                               source=loaded[0].source.with_name("twin"))
    out = evaluate_checkpoints(trained_runs, [loaded[0], twin], progress=False,
                               step_counts=(1, 2), **{**FAST, "samples": 60,
                                                      "samples_per_frame": 3,
                                                      "distinct_truth_mse": 0.1})
    assert out["multi_truth"]["frames_with_matching_observation"] == 60
    for entry in out["checkpoints"].values():
        for metrics in entry["results"].values():
            assert metrics["multi_truth_frames"] == 60
            assert 0.0 <= metrics["between_modes_share"] <= 1.0
            assert 0.0 <= metrics["mode_coverage"] <= 1.0
            assert metrics["best_of_k_mse_mean"] <= metrics["mse_mean"]


def test_every_frame_with_several_truths_is_scored_even_when_few_are_drawn(stub_checkpoints,
                                                                          episodes):
    # Two strategies split after two steps: only those frames have two truths, and a random
    # draw of 4 frames out of 36 would rarely pick them.
    split = [_episode("left", 1.0), _episode("right", -1.0), _episode("other", 1.0, 5.0)]
    split[1].state[2:] += 0.2
    out = evaluate_checkpoints(stub_checkpoints, split, progress=False, step_counts=(1,),
                               **{**FAST, "samples": 4})
    metrics = out["checkpoints"]["teacher"]["results"]["1"]
    assert metrics["multi_truth_frames"] == 2 * 2
    assert metrics["between_modes_share"] == 1.0
