# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The shared training job: YAML forms, bags -> checkpoint, --init checks, clean failures."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from bag_fixtures import write_demo_bag

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.bag_reader import MissingTopicError
from snapflow_ros.policies.base import CheckpointMismatchError, RobotInterface
from snapflow_ros.policies.checkpoint import latest_checkpoint, load_policy, read_checkpoint_info
from snapflow_ros.training.train_job import (
    TrainJobConfig,
    load_train_job_yaml,
    run_train_job,
    train_job_from_mapping,
)

JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/camera/top/image_raw"
TINY_POLICY = {"chunk_size": 4, "cnn_channels": [4, 8], "hidden_dim": 16, "num_layers": 1,
               "num_heads": 2, "num_keypoints": 2, "time_encoding_dim": 8,
               "target_time_hidden_dim": 8, "random_shift_pixels": 0}
TINY_TRAIN = {"steps": 2, "batch_size": 4, "warmup_steps": 0, "val_every": 0,
              "val_num_steps": [1], "eval_num_samples": 8, "checkpoint_every": 0,
              "device": "cpu", "log_every": 1}
DATA = {"camera_topics": [CAMERA], "action_topic": "/leader/joint_states",
        "action_type": "joint_state", "task_topic": "/task", "image_height": 16,
        "image_width": 16, "min_episode_steps": 1}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for index, storage in enumerate(("sqlite3", "mcap", "sqlite3")):
        write_demo_bag(root / f"episode_{index}", storage=storage, n_steps=24,
                       joint_names=JOINTS, camera_topics=(CAMERA,))
    return root


def job_for(bags, out_dir, *, stage="teacher", init="", train=None, data=None, **job):
    return train_job_from_mapping({
        "bags": [str(bags)], "out_dir": str(out_dir), "init_checkpoint": str(init),
        "policy": dict(TINY_POLICY) if not init else {}, "data": {**DATA, **(data or {})},
        "train": {**TINY_TRAIN, "stage": stage, **(train or {})}, **job})


@pytest.fixture(scope="module")
def teacher_run(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    run_train_job(job_for(bags, out), progress=False, log=lambda _: None)
    return out


def test_sections_and_ros_parameter_files_load_the_same_job(tmp_path):
    sections = {"bags": ["demos"], "out_dir": "runs/a", "data": DATA,
                "train": {**TINY_TRAIN, "stage": "snapflow"}, "policy": TINY_POLICY}
    flat = {"bags": ["demos"], "out_dir": "runs/a", **DATA, **TINY_TRAIN, "stage": "snapflow",
            "policy_overrides": [f"{k}={json.dumps(v)}" for k, v in TINY_POLICY.items()],
            "exit_when_done": False}
    (tmp_path / "sections.yaml").write_text(yaml.safe_dump(sections))
    (tmp_path / "ros.yaml").write_text(
        yaml.safe_dump({"snapflow_trainer": {"ros__parameters": flat}}))
    from_sections = load_train_job_yaml(tmp_path / "sections.yaml")
    from_ros = load_train_job_yaml(tmp_path / "ros.yaml")
    assert from_sections.data == from_ros.data
    assert from_sections.train == from_ros.train
    assert from_sections.train.stage == "snapflow"
    assert from_sections.data.camera_keys == ("top",)
    assert from_sections.policy_config_overrides() == from_ros.policy_config_overrides() \
        == TINY_POLICY


def test_unknown_option_is_named_with_the_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"bags": ["x"], "train": {"stpes": 3}}))
    with pytest.raises(ConfigError, match=r"job.yaml.*stpes"):
        load_train_job_yaml(path)
    path.write_text(yaml.safe_dump({"bags": ["x"], "camera_topic": "/cam"}))
    with pytest.raises(ConfigError, match="camera_topic"):
        load_train_job_yaml(path)


def test_policy_overrides_parse_yaml_numbers_and_nested_keys():
    job = TrainJobConfig(policy={"dropout": 0.2}, policy_overrides=(
        "cnn_channels=[8, 16]", "lr_scale=1e-3", "lerobot_overrides.num_vlm_layers=2",
        "image_tokens=grid"))
    assert job.policy_config_overrides() == {
        "dropout": 0.2, "cnn_channels": [8, 16], "lr_scale": 1e-3,
        "lerobot_overrides": {"num_vlm_layers": 2}, "image_tokens": "grid"}
    with pytest.raises(ConfigError, match="key=value"):
        TrainJobConfig(policy_overrides=("chunk_size",))


def test_teacher_job_reports_the_bags_before_training_and_writes_a_loadable_checkpoint(
        bags, tmp_path):
    events = []
    out = tmp_path / "run"
    result = run_train_job(job_for(bags, out), progress=False,
                           log=lambda line: events.append(("log", line)),
                           on_progress=lambda report: events.append(("step", report["step"])),
                           command="snapflow train --test")
    first_step = events.index(("step", 1))
    read_lines = [i for i, (kind, text) in enumerate(events)
                  if kind == "log" and "episodes: 3, samples: 72" in str(text)]
    assert read_lines and read_lines[0] < first_step, events
    assert (result.train_episodes, result.val_episodes) == (2, 1)
    assert result.training.step == 2 and not result.stopped_early

    policy = load_policy(out, expected_robot=RobotInterface(
        joint_names=JOINTS, camera_keys=("top",), image_height=16, image_width=16))
    assert policy.policy_type == "compact" and policy.chunk_size == 4
    info = read_checkpoint_info(out)["info"]
    assert (info["stage"], info["step"], info["command"]) == ("teacher", 2,
                                                             "snapflow train --test")
    saved = load_train_job_yaml(out / "train_job.yaml")
    assert saved.data.camera_topics == (CAMERA,) and saved.policy_type == "compact"


def test_snapflow_stage_distils_the_init_checkpoint_with_its_statistics(bags, teacher_run,
                                                                        tmp_path):
    out = tmp_path / "snap"
    # The data config asks for 24x32 images; the teacher was trained at 16x16, which wins.
    lines = []
    result = run_train_job(job_for(bags, out, stage="snapflow", init=teacher_run,
                                   data={"image_height": 24, "image_width": 32}),
                           progress=False, log=lines.append)
    assert any("16x16" in line for line in lines)
    teacher_info = read_checkpoint_info(teacher_run)
    student_info = read_checkpoint_info(out)
    assert student_info["info"]["stage"] == "snapflow"
    assert student_info["normalization"] == teacher_info["normalization"]
    assert student_info["config"]["policy_config"] == teacher_info["config"]["policy_config"]
    assert result.policy_type == "compact"


def test_snapflow_stage_without_init_is_refused_before_anything_is_read(bags, tmp_path):
    out = tmp_path / "snap"
    with pytest.raises(ConfigError, match="--init"):
        run_train_job(job_for(tmp_path / "no_such_bags", out, stage="snapflow"),
                      progress=False, log=lambda _: None)
    assert not out.exists()


def test_init_checkpoint_with_other_joints_is_refused_naming_them(bags, teacher_run,
                                                                  tmp_path):
    out = tmp_path / "snap"
    with pytest.raises(CheckpointMismatchError, match=r"joint_names.*unexpected \['gripper'\]"):
        run_train_job(job_for(bags, out, stage="snapflow", init=teacher_run,
                              data={"joint_names": ["shoulder", "elbow"]}),
                      progress=False, log=lambda _: None)
    assert not out.exists()


def test_init_checkpoint_with_other_cameras_is_refused_before_reading_bags(teacher_run,
                                                                           tmp_path):
    out = tmp_path / "snap"
    # The bags do not exist: the camera check must come first, from the config alone.
    with pytest.raises(CheckpointMismatchError, match=r"camera_keys.*\['wrist'\]"):
        run_train_job(job_for(tmp_path / "missing", out, stage="snapflow", init=teacher_run,
                              data={"camera_keys": ["wrist"]}),
                      progress=False, log=lambda _: None)
    assert not out.exists()


def test_bag_errors_leave_no_output_directory(bags, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MissingTopicError, match="/no_such_state"):
        run_train_job(job_for(bags, out, data={"state_topic": "/no_such_state"}),
                      progress=False, log=lambda _: None)
    assert not out.exists()


def test_a_run_failing_before_its_first_checkpoint_leaves_no_output_directory(bags, tmp_path):
    out = tmp_path / "run"

    def crash():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_train_job(job_for(bags, out), progress=False, log=lambda _: None,
                      should_stop=crash)
    assert not out.exists()


def test_existing_run_needs_resume_and_resume_continues_it(bags, tmp_path):
    out = tmp_path / "run"
    stop_after_first = iter([True])
    result = run_train_job(job_for(bags, out, train={"steps": 3}), progress=False,
                           log=lambda _: None,
                           should_stop=lambda: next(stop_after_first, False))
    assert result.stopped_early and result.training.step == 1
    assert latest_checkpoint(out).name == "step_00000001"
    with pytest.raises(ConfigError, match="--resume"):
        run_train_job(job_for(bags, out, train={"steps": 3}), progress=False,
                      log=lambda _: None)
    resumed = run_train_job(job_for(bags, out, train={"steps": 3}), resume=True,
                            progress=False, log=lambda _: None)
    assert resumed.training.step == 3 and not resumed.stopped_early
    assert read_checkpoint_info(out)["info"]["step"] == 3


def test_single_episode_trains_without_validation(tmp_path):
    bag = write_demo_bag(tmp_path / "only", n_steps=16, joint_names=JOINTS,
                         camera_topics=(CAMERA,)).path
    lines = []
    result = run_train_job(job_for(bag, tmp_path / "run", train={"steps": 1}),
                           progress=False, log=lines.append)
    assert (result.train_episodes, result.val_episodes) == (1, 0)
    assert any("nothing held out" in line for line in lines)


def test_policy_path_must_be_a_lerobot_checkpoint_for_a_lerobot_policy(bags, tmp_path):
    job = dataclasses.replace(job_for(bags, tmp_path / "run"), policy_path=str(tmp_path))
    with pytest.raises(ConfigError, match="policy_path is for the LeRobot policies"):
        run_train_job(job, progress=False, log=lambda _: None)
    job = dataclasses.replace(job, policy_type="smolvla", policy={})
    with pytest.raises(ConfigError, match=r"not a local LeRobot checkpoint.*config\.json"):
        run_train_job(job, progress=False, log=lambda _: None)
    assert not (tmp_path / "run").exists()


class _Captured(Exception):
    """Raised by the stand-in trainer once it has the settings it would train with."""


@pytest.mark.parametrize("flags, lr", [([], 2.5e-5), (["--lr", "1e-4"], 1e-4)])
def test_snapflow_train_policy_smolvla_uses_its_recipe_unless_a_flag_says_otherwise(
        bags, tmp_path, monkeypatch, flags, lr):
    """``snapflow train --policy smolvla``: lr etc. from smolvla's defaults; ``--lr`` wins."""
    from snapflow_ros.cli import build_parser
    from snapflow_ros.cli.train import job_from_args
    from snapflow_ros.policies.registry import new_policy
    from snapflow_ros.training import train_job, trainer

    args = build_parser().parse_args([
        "train", "--bags", str(bags), "--out", str(tmp_path / "run"), "--stage", "teacher",
        "--policy", "smolvla", "--camera-topic", CAMERA, "--action-topic",
        "/leader/joint_states", "--set", "data.image_height=16", "--set",
        "data.image_width=16", "--set", "task_topic=/task", *flags])
    job, _ = job_from_args(args)
    assert job.policy_type == "smolvla" and job.train.lr == (None if not flags else lr)
    # Stand-ins for the VLA (a tiny compact policy) and for the training loop.
    monkeypatch.setattr(train_job, "_build_new_policy", lambda job, kind, robot, stats, o:
                        new_policy("compact", TINY_POLICY, robot, stats))
    seen = {}

    def capture(policy, train_set, val_set, config, out_dir, **kwargs):
        seen["config"] = config
        raise _Captured

    monkeypatch.setattr(trainer, "run_training", capture)
    lines = []
    with pytest.raises(_Captured):
        run_train_job(job, progress=False, log=lines.append)
    config = seen["config"]
    assert config.lr == lr
    assert (config.batch_size, config.grad_clip, config.warmup_steps) == (4, 1.0, 100)
    recipe_line = next(line for line in lines if line.startswith("training recipe"))
    defaulted = recipe_line.split(" (")[0]  # the values taken from the defaults, then the source
    assert "smolvla defaults" in defaulted and ("lr 2.5e-05" in defaulted) == (not flags)
