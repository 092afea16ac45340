# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow train``: both stages from bags, flags over the config file, bad input, Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml
from bag_fixtures import write_demo_bag

from snapflow_ros import cli
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import latest_checkpoint, load_policy, read_checkpoint_info

JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/camera/top/image_raw"
TOPIC_FLAGS = ["--camera-topic", CAMERA, "--action-topic", "/leader/joint_states",
               "--action-type", "joint_state", "--rate-hz", "50"]
TINY = ["--set", "chunk_size=4", "--set", "cnn_channels=[4,8]", "--set", "hidden_dim=16",
        "--set", "num_layers=1", "--set", "num_heads=2", "--set", "num_keypoints=2",
        "--set", "time_encoding_dim=8", "--set", "target_time_hidden_dim=8",
        "--set", "data.image_height=16", "--set", "data.image_width=16",
        "--set", "val_every=0", "--set", "val_num_steps=[1]", "--set", "eval_num_samples=8",
        "--set", "warmup_steps=0"]
FAST = ["--batch-size", "4", "--device", "cpu", "--no-progress", "--set", "warmup_steps=0",
        "--set", "val_every=0", "--set", "val_num_steps=[1]", "--set", "eval_num_samples=8"]
ROBOT = RobotInterface(joint_names=JOINTS, camera_keys=("top",), image_height=16,
                       image_width=16)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for index, storage in enumerate(("sqlite3", "mcap", "mcap")):
        write_demo_bag(root / f"episode_{index}", storage=storage, n_steps=20,
                       joint_names=JOINTS, camera_topics=(CAMERA,))
    return root


def tiny(*args: str) -> list[str]:
    return [*args, *TINY]


@pytest.fixture(scope="module")
def teacher(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    code = cli.main(["train", "--bags", str(bags), *TOPIC_FLAGS, "--stage", "teacher",
                     "--out", str(out), "--steps", "2", *tiny(*FAST)])
    assert code == 0
    return out


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_teacher_through_snapflow_cli_records_the_command(teacher):
    policy = load_policy(teacher, expected_robot=ROBOT)
    assert policy.chunk_size == 4
    info = read_checkpoint_info(teacher)["info"]
    assert info["stage"] == "teacher" and info["step"] == 2
    assert info["command"].startswith("snapflow train ")
    assert "--stage teacher" in info["command"] and "cnn_channels=[4,8]" in info["command"]


def test_snapflow_stage_from_the_teacher(bags, teacher, tmp_path, capsys):
    out = tmp_path / "snap"
    argv = ["--bags", str(bags), *TOPIC_FLAGS, "--stage", "snapflow", "--init", str(teacher),
            "--out", str(out), "--steps", "2", *FAST]
    assert cli.main(["train", *argv]) == 0
    printed = capsys.readouterr().out
    assert "episodes: 3, samples: 60" in printed
    assert printed.index("episodes: 3") < printed.index("finished at step 2")
    policy = load_policy(out, expected_robot=ROBOT)
    assert policy.policy_type == "compact"
    info = read_checkpoint_info(out)["info"]
    assert info["stage"] == "snapflow"
    # main(argv) records exactly what was typed.
    assert info["command"] == shlex.join(["snapflow", "train", *argv])


def test_flags_override_the_config_file(bags, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"camera_topics": ["/other/image_raw"], "camera_keys": ["other"],
                 "action_topic": "/wrong", "rate_hz": 10.0},
        "train": {"stage": "teacher", "steps": 500},
        "policy": {"chunk_size": 4}}))
    out = tmp_path / "run"
    assert cli.main(["train", "--config", str(config), "--bags", str(bags), *TOPIC_FLAGS,
                           "--out", str(out), "--steps", "1", *tiny(*FAST)]) == 0
    info = read_checkpoint_info(out)
    assert info["info"]["step"] == 1
    # --camera-topic replaced the config's camera, and with it the config's camera key.
    assert info["config"]["robot"]["camera_keys"] == ["top"]


@pytest.mark.parametrize(("flags", "named"), [
    (["--state-topic", "/no_such_state"], "/no_such_state"),
    (["--action-type", "joint_trajectory"], "/leader/joint_states"),
    (["--joint-names", "shoulder,wrist"], "wrist"),
])
def test_bad_topics_exit_2_with_one_line_naming_it(bags, tmp_path, capsys, flags, named):
    out = tmp_path / "run"
    code = cli.main(["train", "--bags", str(bags), *TOPIC_FLAGS, *flags, "--stage", "teacher",
                           "--out", str(out), "--steps", "1", *tiny(*FAST)])
    assert code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and named in lines[0] and "episode_0" in lines[0], lines
    assert not out.exists()


def test_not_a_bag_exits_2_naming_the_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    out = tmp_path / "run"
    code = cli.main(["train", "--bags", str(notes), *TOPIC_FLAGS, "--stage", "teacher",
                           "--out", str(out), *FAST])
    assert code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(notes) in lines[0] and "rosbag2" in lines[0]
    assert not out.exists()


def test_init_for_other_joints_exits_2_naming_the_mismatch(tmp_path, teacher, capsys):
    other = write_demo_bag(tmp_path / "other_arm", joint_names=("hip", "knee", "gripper"),
                           camera_topics=(CAMERA,), n_steps=12).path
    out = tmp_path / "snap"
    code = cli.main(["train", "--bags", str(other), *TOPIC_FLAGS, "--stage", "snapflow",
                           "--init", str(teacher), "--out", str(out), *FAST])
    assert code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "joint_names" in lines[0] and "'hip'" in lines[0]
    assert str(teacher) in lines[0]
    assert not out.exists()


def test_missing_stage_and_snapflow_without_init_exit_2(bags, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--bags", str(bags), "--out", str(out)]) == 2
    assert "--stage" in capsys.readouterr().err
    assert cli.main(["train", "--bags", str(bags), *TOPIC_FLAGS, "--stage", "snapflow",
                           "--out", str(out), *FAST]) == 2
    assert "--init" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_writes_a_final_checkpoint_and_exits_130(bags, tmp_path, signum):
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snapflow_ros.cli", "train", "--bags", str(bags),
             *TOPIC_FLAGS, "--stage", "teacher", "--out", str(out), "--steps", "100000",
             "--set", "log_every=1", "--set", "checkpoint_every=0", *tiny(*FAST)],
            stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while "step 2/100000" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None, log.read_text()
    step = json.loads((checkpoint / "info.json").read_text())["step"]
    assert 2 <= step < 100000
    assert "--resume" in log.read_text()
    load_policy(checkpoint, expected_robot=ROBOT)
