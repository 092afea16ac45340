# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training survives being killed, corrupt bags and a full disk without losing work."""

from __future__ import annotations

import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bag_fixtures import write_demo_bag

from snapflow_ros import cli
from snapflow_ros.policies import checkpoint as checkpoint_module
from snapflow_ros.policies.checkpoint import latest_checkpoint, load_policy, read_checkpoint_info

JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/camera/top/image_raw"
FLAGS = ["--camera-topic", CAMERA, "--action-topic", "/leader/joint_states",
         "--action-type", "joint_state", "--rate-hz", "50", "--batch-size", "4",
         "--device", "cpu", "--no-progress"]
TINY = ["--set", "chunk_size=4", "--set", "cnn_channels=[4,8]", "--set", "hidden_dim=16",
        "--set", "num_layers=1", "--set", "num_heads=2", "--set", "num_keypoints=2",
        "--set", "time_encoding_dim=8", "--set", "target_time_hidden_dim=8",
        "--set", "data.image_height=16", "--set", "data.image_width=16",
        "--set", "val_every=0", "--set", "val_num_steps=[1]", "--set", "eval_num_samples=8",
        "--set", "warmup_steps=0", "--set", "checkpoint_every=3", "--set", "log_every=1"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for index in range(3):
        write_demo_bag(root / f"episode_{index}", n_steps=20, joint_names=JOINTS,
                       camera_topics=(CAMERA,))
    return root


def _train_command(bags: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snapflow_ros.cli", "train", "--bags", str(bags), *FLAGS,
            "--stage", "teacher", "--out", str(out), "--steps", str(steps), *TINY, *extra]


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_the_latest_checkpoint(bags, tmp_path):
    out = tmp_path / "run"
    steps = 400
    rng = random.Random(1234)
    saved_steps = []
    command = _train_command(bags, out, steps)
    for attempt in range(4):
        extra = ["--resume"] if latest_checkpoint(out) is not None else []
        process = subprocess.Popen(command + extra, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        # Kill once the run is into training (a checkpoint exists), at a random moment.
        deadline = time.monotonic() + 120
        while latest_checkpoint(out) is None or (
                saved_steps and _latest_step(out) <= saved_steps[-1]):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
        # The latest checkpoint always loads, whatever moment the kill hit.
        latest = latest_checkpoint(out)
        assert latest is not None, f"attempt {attempt}: no loadable checkpoint"
        load_policy(out)
        saved_steps.append(read_checkpoint_info(out)["info"]["step"])
    assert saved_steps == sorted(saved_steps) and saved_steps[-1] > saved_steps[0], saved_steps
    # --resume continues the same run to its end.
    result = subprocess.run(_train_command(bags, out, 60 + saved_steps[-1], "--resume"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_checkpoint_info(out)["info"]["step"] == 60 + saved_steps[-1]
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if '"step"' in line]
    assert max(logged) == 60 + saved_steps[-1]
    load_policy(out)


def _latest_step(out: Path) -> int:
    try:
        return read_checkpoint_info(out)["info"]["step"]
    except Exception:  # noqa: BLE001 - mid-write: treat as no newer checkpoint yet
        return -1


@pytest.mark.parametrize("policy", ["skip", "fail"])
def test_corrupt_bag_among_good_ones(bags, tmp_path, policy, capsys):
    folder = tmp_path / "bags"
    folder.mkdir()
    for bag in sorted(bags.iterdir()):
        (folder / bag.name).symlink_to(bag, target_is_directory=True)
    broken = folder / "episode_broken"
    write_demo_bag(broken, n_steps=20, joint_names=JOINTS, camera_topics=(CAMERA,))
    database = next(broken.glob("*.db3"))
    database.write_bytes(database.read_bytes()[:4096])
    out = tmp_path / "run"
    code = cli.main(["train", "--bags", str(folder), *FLAGS, "--stage", "teacher",
                     "--out", str(out), "--steps", "2", *TINY,
                     "--set", f"data.on_corrupt_bag={policy}"])
    text = capsys.readouterr()
    if policy == "skip":
        assert code == 0
        assert "episode_broken" in text.out + text.err
        load_policy(out)
    else:
        assert code == 2
        assert "episode_broken" in text.out + text.err
        assert not out.exists(), "a failed run left a half-written output directory"


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from checkpoint_fixtures import write_tiny_checkpoint

    first = write_tiny_checkpoint(tmp_path / "run")
    policy = load_policy(tmp_path / "run")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", no_space)
    with pytest.raises(OSError, match="No space"):
        checkpoint_module.save_checkpoint(policy, tmp_path / "run", stage="teacher", step=5)
    assert latest_checkpoint(tmp_path / "run") == first
    assert read_checkpoint_info(tmp_path / "run")["info"]["step"] == 0
    load_policy(tmp_path / "run")
    leftovers = list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))
    assert leftovers == [], "a failed save left temporary files behind"
