# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the evaluation tests: demo bags and two tiny trained runs (teacher, SnapFlow)."""

from __future__ import annotations

import pytest
from bag_fixtures import write_demo_bag
from evaluation_fixtures import SPLIT_SEED, TINY_POLICY, TOPIC_ARGS, VAL_FRACTION, run_cli


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Intra-op threads spin against each other on a busy 2-core machine (40x slower here).
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def demo_bags(tmp_path_factory):
    """Five 0.6 s demonstration bags (16x16 images) in one folder."""
    root = tmp_path_factory.mktemp("eval_bags")
    bags = [write_demo_bag(root / f"ep{i}", n_steps=30, image_size=(16, 16)) for i in range(5)]
    return root, bags


@pytest.fixture(scope="session")
def trained_runs(demo_bags, tmp_path_factory):
    """A teacher run and a SnapFlow run distilled from it, three steps each, via the train CLI."""
    bag_dir, _ = demo_bags
    out = tmp_path_factory.mktemp("runs")
    common = ["--bags", str(bag_dir), *TOPIC_ARGS, "--steps", "3", "--batch-size", "4",
              "--device", "cpu", "--no-progress",
              "--set", "train.val_every=0", "--set", "train.checkpoint_every=0",
              "--set", "train.eval_num_samples=4", "--set", f"train.val_fraction={VAL_FRACTION}",
              "--set", f"train.seed={SPLIT_SEED}", "--set", "data.min_episode_steps=1"]
    teacher, snap = out / "teacher", out / "snap"
    code, _, err = run_cli(["train", *common, "--stage", "teacher", "--out", str(teacher),
                            "--set", "data.image_height=16", "--set", "data.image_width=16",
                            *[a for item in TINY_POLICY for a in ("--set", item)]])
    assert code == 0, err
    code, _, err = run_cli(["train", *common, "--stage", "snapflow", "--init", str(teacher),
                            "--out", str(snap)])
    assert code == 0, err
    return {"teacher": teacher, "snap": snap}
