# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared settings and fixtures of the evaluation tests, and an in-process ``snapflow`` runner.

The fixtures (demo bags, two tiny trained runs, one torch thread) serve ``test/evaluation`` and
the harness tests in ``test/nodes/harness``; a conftest makes them available by importing them.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from bag_fixtures import write_demo_bag

# The fixture runs' held-out split: 2 of 5 episodes, seed 3 (not the evaluation defaults).
VAL_FRACTION = 0.4
SPLIT_SEED = 3
TINY_POLICY = ("chunk_size=5", "cnn_channels=[4,8]", "hidden_dim=16", "num_layers=1",
               "num_heads=2", "time_encoding_dim=8", "target_time_hidden_dim=8",
               "num_keypoints=4")
TOPIC_ARGS = ["--camera-topic", "/camera/top/image_raw", "--action-topic",
              "/leader/joint_states", "--action-type", "joint_state"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``snapflow ARGV`` in-process: (exit code, stdout, stderr)."""
    from snapflow_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
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
