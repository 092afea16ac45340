# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow export-lerobot``: bags -> LeRobotDataset, config file + flags, clean failures."""

from __future__ import annotations

import pytest
import yaml
from bag_fixtures import write_demo_bag

from snapflow_ros import cli

pytest.importorskip("lerobot")
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/cam_high/image_raw"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    write_demo_bag(root / "ep0", storage="sqlite3", n_steps=12, joint_names=JOINTS,
                   camera_topics=(CAMERA,), task="stack the cups")
    write_demo_bag(root / "ep1", storage="mcap", n_steps=14, joint_names=JOINTS,
                   camera_topics=(CAMERA,), task="stack the cups")
    return root


def export(*argv: str) -> int:
    return cli.main(["export-lerobot", "--no-progress", *argv])


def test_export_with_the_trainer_config_file_and_flag_overrides(bags, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"snapflow_trainer": {"ros__parameters": {
        "camera_topics": [CAMERA], "camera_keys": ["high"], "action_topic": "/wrong",
        "action_type": "joint_state", "task_topic": "/task", "image_height": 12,
        "image_width": 16, "min_episode_steps": 1, "steps": 10}}}))
    out = tmp_path / "datasets" / "demo"
    code = export("--bags", str(bags), "--config", str(config), "--action-topic",
                  "/leader/joint_states", "--out", str(out), "--repo-id", "local/demo",
                  "--robot-type", "arm")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "episodes: 2, samples: 26" in printed and f"to {out}" in printed
    dataset = LeRobotDataset("local/demo", root=out, video_backend="pyav")
    assert dataset.num_episodes == 2 and len(dataset) == 26 and dataset.fps == 50
    assert dataset.meta.robot_type == "arm"
    assert dataset.features["observation.state"]["names"] == list(JOINTS)
    assert dataset[0]["observation.images.high"].shape == (3, 12, 16)
    assert dataset[0]["task"] == "stack the cups"


def test_missing_topic_exits_2_naming_it_and_writes_nothing(bags, tmp_path, capsys):
    out = tmp_path / "datasets" / "demo"
    code = export("--bags", str(bags), "--camera-topic", CAMERA, "--state-topic", "/nope",
                  "--action-topic", "/leader/joint_states", "--action-type", "joint_state",
                  "--out", str(out), "--repo-id", "local/demo")
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("error:")]
    assert len(errors) == 1 and "/nope" in errors[0] and "ep0" in errors[0]
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_rate_that_is_not_whole_hz_is_refused_without_leftovers(bags, tmp_path, capsys):
    out = tmp_path / "datasets" / "demo"
    code = export("--bags", str(bags), "--camera-topic", CAMERA, "--action-topic",
                  "/leader/joint_states", "--action-type", "joint_state", "--rate-hz",
                  "62.5", "--out", str(out), "--repo-id", "local/demo")
    assert code == 2
    assert "fps" in capsys.readouterr().err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(bags, tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    flags = ["--bags", str(bags), "--camera-topic", CAMERA, "--action-topic",
             "/leader/joint_states", "--action-type", "joint_state", "--out", str(out),
             "--repo-id", "local/demo"]
    assert export(*flags) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert export(*flags, "--overwrite") == 0
    assert not (out / "keep.txt").exists()
    assert LeRobotDataset("local/demo", root=out, video_backend="pyav").num_episodes == 2
