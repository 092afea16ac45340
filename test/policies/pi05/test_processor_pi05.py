# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""PI05's normalisation: LeRobot's QUANTILES, so the state bins in its prompt keep their range.

PI05 writes the normalised state into the prompt as 256 bins over [-1, 1]; a value outside
lands in an end bin. With q01 / q99 about 2% of realistic joint values do, as in LeRobot; with
z-scores (the mean / std fallback for statistics without quantiles) about a third would.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from lerobot.configs import NormalizationMode
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import TransitionKey
from vla_fixtures import CHUNK, ROBOT, raw_batch, vla_options, write_backbones

from snapflow_ros.policies.checkpoint import CheckpointError, load_policy, save_checkpoint
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.policies.registry import new_policy

BINS = 256
ROWS = 1000


def joint_recording(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint states (rad) and actions of a realistic spread: Gaussian, uniform, skewed."""
    rng = np.random.default_rng(seed)
    states = np.stack([rng.normal(0.3, 0.6, rows), rng.uniform(-1.2, 0.4, rows),
                       rng.gamma(2.0, 0.1, rows)], axis=1)
    actions = states + rng.normal(0.0, 0.05, states.shape)
    return states, actions


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    return write_backbones(tmp_path_factory.mktemp("backbones"))


def build_pi05(backbones, stats: NormalizationStats):
    torch.manual_seed(0)
    return new_policy("pi05", vla_options("pi05", backbones), ROBOT, stats).eval()


def prompt_state_bins(policy, states: np.ndarray) -> np.ndarray:
    """The state bins ``(N, S)`` LeRobot's PI05 preprocessor writes into the prompt."""
    batch = raw_batch(rows=len(states))
    batch["state"] = torch.as_tensor(states, dtype=torch.float32)
    raw = policy._lerobot_batch(batch, with_action=False)
    steps = policy.preprocessor.steps
    last = next(i for i, s in enumerate(steps)
                if isinstance(s, Pi05PrepareStateTokenizerProcessorStep))
    for index, transition in enumerate(policy.preprocessor.step_through(raw)):
        if index == last + 1:  # step_through yields the input first
            prompts = transition[TransitionKey.COMPLEMENTARY_DATA]["task"]
            break
    return np.array([[int(v) for v in re.search(r"State: ([-\d ]+);", p).group(1).split()]
                     for p in prompts])


def saturated_share(bins: np.ndarray) -> float:
    """Share of values in the first or last of the 256 bins (or beyond them)."""
    return float(np.mean((bins <= 0) | (bins >= BINS - 1)))


def test_quantiles_keep_the_prompt_state_off_the_end_bins(backbones, caplog):
    states, actions = joint_recording(4000, seed=0)
    stats = NormalizationStats.from_arrays(states, actions)
    policy = build_pi05(backbones, stats)
    mapping = policy.lerobot_policy.config.normalization_mapping
    assert mapping["STATE"] == mapping["ACTION"] == NormalizationMode.QUANTILES
    fresh, _ = joint_recording(ROWS, seed=1)  # new frames from the same robot
    quantile_share = saturated_share(prompt_state_bins(policy, fresh))
    # The same statistics without quantiles (written before them): mean / std, with a warning.
    old_stats = NormalizationStats(stats.state_mean, stats.state_std, stats.action_mean,
                                   stats.action_std)
    with caplog.at_level(logging.WARNING):
        z_policy = build_pi05(backbones, old_stats)
    assert "lack q01 / q99: using MEAN_STD" in caplog.text
    assert z_policy.lerobot_policy.config.normalization_mapping["STATE"] == (
        NormalizationMode.MEAN_STD)
    z_share = saturated_share(prompt_state_bins(z_policy, fresh))
    print(f"saturated state bins: quantiles {quantile_share:.3f}, z-scores {z_share:.3f}")
    assert quantile_share < 0.04  # LeRobot's level: ~2% outside q01..q99
    assert z_share > 0.25  # |z| > 1 for about a third


def test_actions_round_trip_through_the_quantile_normalisation_exactly(backbones, tmp_path):
    states, actions = joint_recording(4000, seed=2)
    stats = NormalizationStats.from_arrays(states, actions)
    policy = build_pi05(backbones, stats)
    batch = raw_batch()
    chunk = torch.as_tensor(actions[:3 * CHUNK].reshape(3, CHUNK, 3), dtype=torch.float32)
    batch["action"] = chunk
    x0, _ = policy.normalized_action_target(batch)
    low, high = torch.tensor(stats.action_q01), torch.tensor(stats.action_q99)
    torch.testing.assert_close(x0[..., :3], 2 * (chunk - low) / (high - low) - 1)
    torch.testing.assert_close(policy.to_robot_actions(x0), chunk, rtol=0, atol=1e-6)
    # The quantiles travel in normalization.json and the checkpoint normalises the same.
    checkpoint = save_checkpoint(policy, tmp_path / "run", stage="teacher", step=1)
    loaded = load_policy(checkpoint)
    assert loaded.normalization_stats() == stats
    torch.testing.assert_close(loaded.normalized_action_target(batch)[0], x0)


def test_a_quantile_checkpoint_whose_statistics_lost_their_quantiles_is_refused(backbones,
                                                                                tmp_path):
    import json

    states, actions = joint_recording(500, seed=3)
    policy = build_pi05(backbones, NormalizationStats.from_arrays(states, actions))
    checkpoint = save_checkpoint(policy, tmp_path / "run", stage="teacher", step=1)
    path = checkpoint / "normalization.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if not k.endswith(("q01", "q99"))}))
    with pytest.raises(CheckpointError, match="QUANTILES.*no q01 / q99"):
        load_policy(checkpoint)
