# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The live replay harness: held-out bags played into a real policy node, over ROS 2."""

import json

import numpy as np
import pytest
from evaluation_fixtures import SPLIT_SEED, VAL_FRACTION, run_cli

from snapflow_ros.data.dataset import split_episodes
from snapflow_ros.data.episodes import load_episodes


@pytest.mark.ros
@pytest.mark.slow
def test_live_replay_scores_the_running_policy_node_on_held_out_bags(trained_runs, demo_bags,
                                                                      tmp_path):
    out_json, report = tmp_path / "live.json", tmp_path / "report"
    code, stdout, stderr = run_cli([
        "eval", "--live", "--checkpoint", f"snap={trained_runs['snap']}", "--steps", "1",
        "--n-act", "5", "--json", str(out_json), "--report", str(report), "--no-progress"])
    assert code == 0, stderr
    result = json.loads(out_json.read_text())
    assert result["mode"] == "live"
    bag_dir, bags = demo_bags
    episodes, _ = load_episodes(bag_dir, bags[0].config(image_height=16, image_width=16),
                                progress=False)
    _, val = split_episodes(episodes, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    assert [e["source"] for e in result["episodes"]] == [str(e.source) for e in val]
    metrics = result["checkpoints"]["snap"]["results"]["1"]
    assert metrics["mode"] == "jump"
    assert metrics["num_trajectories"] >= 4
    assert np.isfinite(metrics["mse_mean"]) and metrics["mse_mean"] > 0
    assert metrics["latency_ms_p50"] > 0
    assert (report / "report.md").is_file()
    assert "| snap | snapflow | 1 | jump |" in stdout
