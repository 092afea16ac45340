# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The benchmark's stages compute what the policy node's runner computes, on every path."""

import numpy as np
import pytest
import torch
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.evaluation.latency_stages import (
    PROMPT,
    InferenceStages,
    SyntheticFrames,
    measure_steps,
)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    from snapflow_ros.runtime.policy_runner import PolicyRunner

    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("stages") / "run", image_size=24,
                                       chunk_size=8, action_std=0.5)
    return PolicyRunner(checkpoint, device="cpu", seed=7)


def _stage_by_stage(stages, frame, state, steps, mode):
    prepared, noise = stages.preprocess(frame, state)
    context = stages.prefix(prepared)
    return stages.postprocess(stages.expert(context, prepared, noise, steps, mode))


@pytest.mark.parametrize("path", ["sampler", "fast", "naive"])
@pytest.mark.parametrize(("steps", "mode"), [(1, "jump"), (3, "euler")])
def test_every_path_gives_the_chunk_the_node_runner_gives_for_the_same_seed(runner, path,
                                                                           steps, mode):
    from snapflow_ros.runtime.fast_inference import FastInferenceConfig
    from snapflow_ros.runtime.observation_buffer import Observation

    frame = SyntheticFrames(24, 24, "raw", seed=1).decode()
    state = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    observation = Observation(images={"top": frame}, state=state, measured_position=state,
                              task=PROMPT, time=0.0, stamps={}, ages={})
    expected = runner.infer(observation, steps, mode,
                            generator=torch.Generator().manual_seed(7)).actions
    stages = InferenceStages(runner.policy, path,
                             FastInferenceConfig() if path == "fast" else None, seed=7)
    try:
        actions = _stage_by_stage(stages, frame, state, steps, mode)
    finally:
        stages.close()
    assert actions.shape == expected.shape == (8, 3) and actions.dtype == np.float64
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)


def test_measure_steps_times_each_stage_and_the_whole_chunk(runner):
    stages = InferenceStages(runner.policy, "sampler", None, seed=0)
    frames = SyntheticFrames(48, 64, "compressed", seed=0)
    published = []

    class Publisher:
        def publish(self, actions):
            published.append(actions.shape)

        def close(self):
            pass

    try:
        result = measure_steps(stages, frames, np.zeros(3, np.float32), 2, mode="jump",
                               warmup=1, repeats=3, frame_prep="inference",
                               publisher=Publisher())
    finally:
        stages.close()
    assert published == [(8, 3)] * (1 + 3 + 3)  # warm-up, per-stage runs, back-to-back runs
    assert all(result["stages"][name]["n"] == 3 for name in result["stages"])
    assert result["stages"]["decode"]["p50"] > 0 and result["stages"]["resize"]["p50"] > 0
    assert 0 < result["expert_ms_p50"] <= result["expert_total_ms_p50"]  # per call, of 2
    assert result["e2e"]["n"] == 3 and result["e2e_ms_p50"] > 0


def test_unknown_paths_are_refused(runner):
    with pytest.raises(ValueError, match="path"):
        InferenceStages(runner.policy, "warp", None, seed=0)
