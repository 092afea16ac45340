# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Lockstep closed-loop episodes repeat bit for bit: same case, seed and noise, same commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.evaluation.closed_loop import (
    ClosedLoopCase,
    ClosedLoopConfig,
    default_sim_python,
    summarize_episodes,
)
from snapflow_ros.nodes.harness.closed_loop import ClosedLoopRunner

# The simulator's ALOHA_JOINT_NAMES (its package imports MuJoCo, absent from this environment).
ALOHA_JOINTS = tuple(f"{side}_{joint}" for side in ("left", "right") for joint in (
    "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"))


@pytest.mark.ros
@pytest.mark.slow
def test_the_same_episode_twice_commands_the_same_targets_and_other_noise_does_not(tmp_path):
    sim_python = default_sim_python()
    if not Path(sim_python).exists():
        pytest.skip(f"needs the simulator environment ({sim_python}); `make setup-sim`")
    # Actions spread around zero (radians): visibly different commands for other noise.
    checkpoint = write_tiny_checkpoint(tmp_path / "policy", joint_names=ALOHA_JOINTS,
                                       image_size=128, chunk_size=10, action_mean=0.0,
                                       action_std=0.05)
    config = ClosedLoopConfig(episodes=1, episode_steps=40, sim_python=sim_python,
                              log_dir=str(tmp_path / "logs"), episode_timeout_s=90.0,
                              startup_timeout_s=120.0)
    # n_act 3 does not divide the episode: chunk boundaries fall on different steps per chunk.
    case = ClosedLoopCase(name="policy", checkpoint=str(checkpoint), num_steps=2,
                          sampler_mode="euler", n_act=3)
    with ClosedLoopRunner(config, log=lambda line: None) as runner:
        first = runner.run_episode(case, seed=100000, noise_seed=7)
        again = runner.run_episode(case, seed=100000, noise_seed=7)
        other_noise = runner.run_episode(case, seed=100000, noise_seed=8)
    for episode in (first, again, other_noise):
        assert episode.steps == 40 and not episode.timed_out
        assert episode.lockstep_timeouts == 0
        assert len(episode.command_digest) == 16
    assert again.command_digest == first.command_digest
    assert again.chunks == first.chunks == 14  # ceil(40 / 3): a chunk every n_act steps
    assert other_noise.command_digest != first.command_digest
    # The case's digest in the result JSON compares whole reruns.
    digests = [summarize_episodes([e])["digest"] for e in (first, again, other_noise)]
    assert digests[0] == digests[1] != digests[2]
