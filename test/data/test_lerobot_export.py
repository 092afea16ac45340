# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Export to a LeRobotDataset v3 and read it back with LeRobot, offline."""

import numpy as np
import pytest
import torch
from bag_fixtures import write_demo_bag

from snapflow_ros.data.episodes import load_episodes
from snapflow_ros.data.lerobot_export import export_lerobot_dataset

pytest.importorskip("lerobot")
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def episodes(tmp_path):
    bags = [write_demo_bag(tmp_path / "bags" / "ep0", n_steps=12),
            write_demo_bag(tmp_path / "bags" / "ep1", n_steps=9, task="stack the cups")]
    loaded, _ = load_episodes(tmp_path / "bags", bags[0].config(), progress=False)
    return loaded


def test_export_round_trip_keeps_shapes_values_and_tasks(tmp_path, episodes):
    out = export_lerobot_dataset(episodes, tmp_path / "out" / "demo", "local/demo",
                                 robot_type="aloha")
    dataset = LeRobotDataset("local/demo", root=out, video_backend="pyav")
    assert dataset.num_episodes == 2 and len(dataset) == 21 and dataset.fps == 50
    assert dataset.meta.robot_type == "aloha"
    assert dataset.features["observation.state"]["names"] == ["shoulder", "elbow", "gripper"]
    first = dataset[0]
    assert first["observation.images.top"].shape == (3, 24, 32)
    image = (first["observation.images.top"] * 255).round().to(torch.uint8).permute(1, 2, 0)
    np.testing.assert_array_equal(image.numpy(), episodes[0].images["top"][0])
    item = dataset[12 + 4]  # episode 1, frame 4
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 4
    np.testing.assert_allclose(item["observation.state"].numpy(), episodes[1].state[4])
    np.testing.assert_allclose(item["action"].numpy(), episodes[1].action[4])
    assert item["task"] == "stack the cups"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo"]


def test_failed_export_leaves_nothing_behind(tmp_path, episodes, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(LeRobotDataset, "save_episode", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_lerobot_dataset(episodes, tmp_path / "out" / "demo", "local/demo")
    assert list((tmp_path / "out").iterdir()) == []


def test_export_refuses_to_overwrite_or_to_round_the_rate(tmp_path, episodes):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export_lerobot_dataset(episodes, target, "local/demo")
    assert (target / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="fps"):
        export_lerobot_dataset(episodes, tmp_path / "new", "local/demo", fps=30)
    assert not (tmp_path / "new").exists()
