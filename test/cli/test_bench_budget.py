# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench budget``: its flags, bad input, what it writes, and one real closed loop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.cli import build_parser
from snapflow_ros.cli import main as snapflow
from snapflow_ros.cli.bench_budget import budget_runs_from_args
from snapflow_ros.evaluation.closed_loop import (
    EpisodeResult,
    default_sim_python,
    summarize_episodes,
)

# The simulator's ALOHA_JOINT_NAMES (its package imports MuJoCo, absent from this environment).
ALOHA_JOINTS = tuple(f"{side}_{joint}" for side in ("left", "right") for joint in (
    "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"))


def _tiny_run(path: Path, steps=(100, 200), stage: str = "teacher") -> Path:
    """A run directory with the same tiny checkpoint at each of ``steps`` and its log."""
    first = write_tiny_checkpoint(path, joint_names=ALOHA_JOINTS, image_size=128,
                                  chunk_size=10, stage=stage)
    for step in steps:
        shutil.copytree(first, first.parent / f"step_{step:08d}")
    shutil.rmtree(first)
    (path / "train_job.yaml").write_text(yaml.safe_dump(
        {"policy_type": "compact", "train": {"batch_size": 4, "device": "cpu"}}))
    lines = [{"kind": "train", "step": s, "loss": 1.0, "samples_per_s": 40.0}
             for s in range(50, max(steps) + 1, 50)]
    lines += [{"kind": "val", "step": s, "val_mse_1": 0.2, "val_mse_10": 0.1} for s in steps]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_flags_give_one_curve_per_run_and_step_count():
    args = build_parser().parse_args([
        "bench", "budget", "--teacher", "runs/t", "--teacher-steps", "10,1",
        "--snapflow", "runs/s", "--every-nth", "2", "--steps-list", "100,200",
        "--episodes", "3", "--seed-start", "5", "--n-act", "5", "--resume"])
    runs = budget_runs_from_args(args)
    assert [(r.label, r.run_dir, r.num_steps, r.sampler_mode) for r in runs] == [
        ("teacher@10", "runs/t", 10, "euler"), ("teacher@1", "runs/t", 1, "euler"),
        ("snapflow@1", "runs/s", 1, "jump")]
    assert (args.every_nth, args.steps_list, args.episodes, args.seed_start, args.n_act,
            args.resume) == (2, [100, 200], 3, 5, 5, True)
    defaults = build_parser().parse_args(["bench", "budget", "--teacher", "t"])
    assert [r.label for r in budget_runs_from_args(defaults)] == ["teacher@10"]
    assert (defaults.every_nth, defaults.steps_list, defaults.target) == (1, None, 0.5)


def test_with_teacher_adds_the_teacher_time_up_to_the_distilled_checkpoint(tmp_path):
    teacher = _tiny_run(tmp_path / "teacher", steps=(100, 200))
    info_path = teacher / "checkpoints" / "step_00000200" / "info.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "step": 200}))
    snap = _tiny_run(tmp_path / "snap", steps=(50,), stage="snapflow")
    job = yaml.safe_load((snap / "train_job.yaml").read_text())
    (snap / "train_job.yaml").write_text(yaml.safe_dump(
        {**job, "init_checkpoint": str(info_path.parent)}))
    flags = ["bench", "budget", "--teacher", str(teacher), "--snapflow", str(snap)]
    own = budget_runs_from_args(build_parser().parse_args(flags))
    both = budget_runs_from_args(build_parser().parse_args(
        [*flags, "--snapflow-budget", "with-teacher"]))
    assert [r.offset_s for r in own] == [0.0, 0.0]
    assert [r.offset_s for r in both] == pytest.approx([0.0, 20.0])  # 200 steps at 0.1 s


def test_bad_input_exits_2_naming_what_is_wrong(tmp_path, capsys):
    assert snapflow(["bench", "budget", "--teacher", str(tmp_path / "missing")]) == 2
    assert "--teacher" in capsys.readouterr().err
    run = _tiny_run(tmp_path / "run")
    assert snapflow(["bench", "budget", "--teacher", str(run), "--steps-list", "150"]) == 2
    assert "no checkpoint at step(s) 150; it has 100, 200" in capsys.readouterr().err
    assert snapflow(["bench", "budget", "--teacher", str(run), "--teacher-steps", "0"]) == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "budget", "--teacher", "t", "--steps-list", "a"])


def test_every_checkpoint_is_a_case_and_the_json_report_and_table_hold_the_curve(
        tmp_path, capsys, monkeypatch):
    teacher = _tiny_run(tmp_path / "teacher", steps=(100, 200, 300))
    ran = {}

    def fake_benchmark(cases, config, *, json_path=None, resume=False, extra=None, **_):
        ran.update(cases=cases, config=config, resume=resume)
        entries = {}
        for index, case in enumerate(cases):
            episodes = [EpisodeResult(seed=config.seed_start + i, success=i < index,
                                      max_reward=4.0 if i < index else 2.0, steps=20,
                                      first_success_step=10 if i < index else None,
                                      sim_time_s=0.4, wall_time_s=1.0)
                        for i in range(config.episodes)]
            entries[case.name] = {"case": {"name": case.name}, "episodes": [],
                                  "summary": summarize_episodes(episodes)}
        return {"config": {"task": config.task, "episodes": config.episodes,
                           "seed_start": config.seed_start,
                           "episode_steps": config.episode_steps},
                "cases": entries, "complete": True, **(extra or {})}

    monkeypatch.setattr("snapflow_ros.cli.bench.run_sim_benchmark", fake_benchmark)
    out = tmp_path / "budget.json"
    code = snapflow(["bench", "budget", "--teacher", str(teacher), "--episodes", "2",
                     "--episode-steps", "20", "--seed-start", "7", "--json", str(out),
                     "--report", str(tmp_path / "report"), "--resume"])
    assert code == 0, capsys.readouterr().err
    assert [c.name for c in ran["cases"]] == [f"teacher@10 step {s}" for s in (100, 200, 300)]
    assert ran["resume"] and ran["config"].image_size == 128  # the checkpoints'
    assert (ran["config"].episodes, ran["config"].seed_start) == (2, 7)
    curve = json.loads(out.read_text())["budget"]["runs"][0]
    assert [p["step"] for p in curve["points"]] == [100, 200, 300]
    assert [p["successes"] for p in curve["points"]] == [0, 1, 2]
    # 40 samples/s at batch 4: 0.1 s per step.
    assert [p["train_s"] for p in curve["points"]] == pytest.approx([10.0, 20.0, 30.0])
    assert [p["val_mse_10"] for p in curve["points"]] == [0.1, 0.1, 0.1]
    assert (tmp_path / "report" / "success_vs_budget.png").is_file()
    assert "| teacher@10 | 300 | 0.5 | 100% (2/2) |" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["sim", "budget"])
def test_the_cross_fade_flags_set_the_closed_loop_config(command, tmp_path, monkeypatch):
    teacher = _tiny_run(tmp_path / "teacher", steps=(100,))
    seen = []

    def fake_benchmark(cases, config, **_):
        seen.append(config)
        return {"cases": {}, "complete": True}

    monkeypatch.setattr("snapflow_ros.cli.bench.run_sim_benchmark", fake_benchmark)
    monkeypatch.setattr("snapflow_ros.evaluation.training_budget.budget_result",
                        lambda *args, **kwargs: {"runs": []})
    monkeypatch.setattr("snapflow_ros.evaluation.training_budget.format_budget_table",
                        lambda budget: "")
    base = ["bench", command, "--teacher", str(teacher), "--episodes", "1"]
    assert snapflow(base) == 0
    assert snapflow([*base, "--blending", "linear", "--blend-steps", "3"]) == 0
    assert [(c.blending, c.blend_steps) for c in seen] == [("none", 5), ("linear", 3)]
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--blending", "cubic"])


@pytest.mark.ros
@pytest.mark.slow
def test_a_real_closed_loop_evaluates_two_checkpoints_once_each(tmp_path, capsys):
    if not Path(default_sim_python()).exists():
        pytest.skip("needs the simulator environment (.venv-sim: gym-aloha, MuJoCo)")
    teacher = _tiny_run(tmp_path / "teacher", steps=(100, 200))
    out = tmp_path / "budget.json"
    argv = ["bench", "budget", "--teacher", str(teacher), "--teacher-steps", "2",
            "--episodes", "1", "--episode-steps", "20", "--n-act", "5",
            "--episode-timeout", "60", "--json", str(out), "--report", str(tmp_path / "r")]
    assert snapflow(argv) == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert list(result["cases"]) == ["teacher@2 step 100", "teacher@2 step 200"]
    for entry in result["cases"].values():
        assert entry["episodes"][0]["steps"] == 20 and not entry["episodes"][0]["timed_out"]
    points = result["budget"]["runs"][0]["points"]
    assert [p["step"] for p in points] == [100, 200]
    assert all(p["success_rate"] == 0.0 and 0 < p["success_ci95"][1] < 1 for p in points)
    # A rerun with --resume finds both checkpoints done and starts no node.
    capsys.readouterr()
    assert snapflow([*argv, "--resume"]) == 0
    assert "2 configuration(s) already done, 0 to run" in capsys.readouterr().err
