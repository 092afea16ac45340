# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Success against training budget: checkpoints, training time, the curve, table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from snapflow_ros.config_fields import ConfigError, config_to_dict
from snapflow_ros.evaluation.closed_loop import (
    EpisodeResult,
    summarize_episodes,
    wilson_interval,
)
from snapflow_ros.evaluation.training_budget import (
    TIME_FROM_ELAPSED,
    TIME_FROM_SAMPLES_PER_S,
    BudgetRun,
    TrainingClock,
    TrainingLog,
    budget_cases,
    budget_result,
    format_budget_table,
    init_checkpoint_step,
    run_checkpoints,
    training_seconds_at,
    write_budget_report,
)


def _fake_run(path: Path, *, steps=(100, 200, 300, 400), log_every=50, batch_size=8,
              samples_per_s=80.0, val_every=100, elapsed=False, extra_lines=()) -> Path:
    """A run directory as `snapflow train` leaves it, with empty checkpoint folders."""
    for step in steps:
        (path / "checkpoints" / f"step_{step:08d}").mkdir(parents=True)
    (path / "train_job.yaml").write_text(yaml.safe_dump(
        {"policy_type": "compact", "train": {"batch_size": batch_size, "device": "cpu",
                                             "log_every": log_every}}))
    lines = []
    for step in range(log_every, max(steps) + 1, log_every):
        record = {"kind": "train", "step": step, "loss": 1.0 / step, "lr": 1e-4,
                  "samples_per_s": samples_per_s}
        if elapsed:
            record["elapsed_s"] = 3.0 * step
        lines.append(record)
        if step % val_every == 0:
            lines.append({"kind": "val", "step": step, "val_loss": 0.5,
                          "val_mse_1": 2.0 / step, "val_mse_10": 1.0 / step})
    lines += list(extra_lines)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _entry(case, successes: int, episodes: int = 4) -> dict:
    results = [EpisodeResult(seed=100000 + i, success=i < successes,
                             max_reward=4.0 if i < successes else 1.0, steps=200,
                             first_success_step=150 if i < successes else None,
                             sim_time_s=4.0, wall_time_s=2.0) for i in range(episodes)]
    return {"case": config_to_dict(case), "summary": summarize_episodes(results),
            "episodes": [r.to_dict() for r in results]}


def _closed_loop(cases, successes_by_name) -> dict:
    return {"config": {"task": "transfer_cube", "episodes": 4, "seed_start": 100000,
                       "episode_steps": 400},
            "cases": {c.name: _entry(c, successes_by_name[c.name]) for c in cases},
            "benchmark": {"command": "snapflow bench budget --teacher runs/teacher"}}


def test_checkpoints_are_listed_by_step_thinned_from_the_newest_or_picked(tmp_path):
    run = _fake_run(tmp_path / "run", steps=(100, 200, 300, 400, 500))
    assert [s for s, _ in run_checkpoints(run)] == [100, 200, 300, 400, 500]
    assert [s for s, _ in run_checkpoints(run, every_nth=2)] == [100, 300, 500]
    assert [s for s, _ in run_checkpoints(run, steps=[400, 200])] == [200, 400]
    with pytest.raises(ConfigError, match="no checkpoint at step.*250.*it has 100, 200"):
        run_checkpoints(run, steps=[250])
    # Folders without a config.json (empty here) are not loadable checkpoints.
    with pytest.raises(ConfigError, match="no checkpoints"):
        run_checkpoints(run, require_complete=True)
    with pytest.raises(ConfigError, match="not a training run"):
        run_checkpoints(tmp_path)


def test_training_time_is_estimated_from_samples_per_second_when_not_logged(tmp_path):
    # 80 samples/s at batch 8: 10 steps/s, 0.1 s per step.
    run = _fake_run(tmp_path / "run", batch_size=8, samples_per_s=80.0)
    clock = TrainingClock.from_log(TrainingLog.read(run), global_batch=8)
    assert clock.source == TIME_FROM_SAMPLES_PER_S
    assert clock.seconds_at(400) == pytest.approx(40.0)
    assert clock.seconds_at(125) == pytest.approx(12.5)  # between log lines
    assert clock.seconds_at(20) == pytest.approx(2.0)  # before the first line
    assert clock.seconds_at(500) == pytest.approx(50.0)  # after the last one, at its pace
    # Two processes doubling the global batch at the same logged rate: twice the time per step.
    assert TrainingClock.from_log(TrainingLog.read(run), 16).seconds_at(400) == \
        pytest.approx(80.0)


def test_a_logged_elapsed_time_is_used_as_it_is(tmp_path):
    run = _fake_run(tmp_path / "run", elapsed=True)
    clock = TrainingClock.from_log(TrainingLog.read(run), global_batch=8)
    assert clock.source == TIME_FROM_ELAPSED
    assert clock.seconds_at(300) == pytest.approx(900.0)


def test_the_lines_of_an_abandoned_attempt_before_a_resume_are_dropped(tmp_path):
    # The run died after logging step 400 and resumed from its checkpoint at step 300 at a
    # slower pace: steps 350 and 400 count once, at the new pace.
    resumed = [{"kind": "train", "step": 350, "samples_per_s": 40.0},
               {"kind": "train", "step": 400, "samples_per_s": 40.0},
               {"kind": "val", "step": 400, "val_mse_10": 0.5}]
    run = _fake_run(tmp_path / "run", extra_lines=resumed)
    log = TrainingLog.read(run)
    assert [r["step"] for r in log.train] == list(range(50, 401, 50))
    clock = TrainingClock.from_log(log, global_batch=8)
    assert clock.seconds_at(400) == pytest.approx(30.0 + 2 * 50 * 0.2)
    assert log.val_at(400) == {"val_mse_10": 0.5}
    assert log.val_at(300)["val_mse_10"] == pytest.approx(1 / 300)
    assert log.val_at(250) == {}


def test_the_curve_has_one_point_per_evaluated_checkpoint_with_time_ci_and_val_mse(tmp_path):
    run_dir = _fake_run(tmp_path / "teacher")
    runs = [BudgetRun(label="teacher@10", run_dir=str(run_dir), num_steps=10,
                      sampler_mode="euler"),
            BudgetRun(label="teacher@1", run_dir=str(run_dir), num_steps=1,
                      sampler_mode="euler")]
    checkpoints = {run.label: run_checkpoints(run_dir, every_nth=2) for run in runs}
    cases = budget_cases(runs, checkpoints, n_act=10)
    assert [c.name for c in cases] == ["teacher@10 step 200", "teacher@10 step 400",
                                       "teacher@1 step 200", "teacher@1 step 400"]
    assert {(c.num_steps, c.series, c.role) for c in cases} == {
        (10, "teacher@10", "budget"), (1, "teacher@1", "budget")}
    successes = {"teacher@10 step 200": 1, "teacher@10 step 400": 3, "teacher@1 step 200": 0}
    evaluated = [c for c in cases if c.name in successes]  # one not run yet
    budget = budget_result(runs, checkpoints, _closed_loop(evaluated, successes),
                           world_size=1, train_threads=2)
    teacher10, teacher1 = budget["runs"]
    assert [p["step"] for p in teacher10["points"]] == [200, 400]
    assert [p["step"] for p in teacher1["points"]] == [200]
    last = teacher10["points"][-1]
    assert last["success_rate"] == 0.75 and last["successes"] == 3 and last["episodes"] == 4
    assert last["success_ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    assert last["mean_max_reward"] == pytest.approx((3 * 4.0 + 1.0) / 4)
    assert last["train_minutes"] == pytest.approx(40.0 / 60)  # 400 steps at 0.1 s
    assert last["cpu_hours"] == pytest.approx(2 * 40.0 / 3600)  # cpu training, 2 threads
    assert last["val_mse_10"] == pytest.approx(1 / 400)
    assert teacher10["time_source"] == TIME_FROM_SAMPLES_PER_S
    assert teacher10["global_batch"] == 8 and teacher10["train_device"] == "cpu"
    json.dumps(budget)  # JSON-ready


def test_table_and_report_show_every_point_and_the_plot_is_written(tmp_path):
    teacher_dir = _fake_run(tmp_path / "teacher")
    snap_dir = _fake_run(tmp_path / "snap", steps=(50, 100), val_every=50, samples_per_s=40.0)
    runs = [BudgetRun(label="teacher@10", run_dir=str(teacher_dir), num_steps=10,
                      sampler_mode="euler"),
            BudgetRun(label="snapflow@1", run_dir=str(snap_dir), num_steps=1,
                      sampler_mode="jump")]
    checkpoints = {run.label: run_checkpoints(run.run_dir) for run in runs}
    cases = budget_cases(runs, checkpoints, n_act=10)
    result = _closed_loop(cases, {c.name: 2 for c in cases})
    result["budget"] = budget_result(runs, checkpoints, result)
    table = format_budget_table(result["budget"])
    assert table.count("\n") == 2 + 4 + 2
    assert "| teacher@10 | 400 | 0.7 | 50% (2/4) | 15-85% | 2.50 | 0.0025 | 4 |" in table
    assert "| snapflow@1 | 100 | 0.3 | 50% (2/4) |" in table  # 100 steps at 0.2 s
    report = write_budget_report(result, tmp_path / "report")
    assert {p.name for p in report.iterdir()} == {"report.md", "success_vs_budget.png"}
    assert (report / "success_vs_budget.png").stat().st_size > 5000
    text = (report / "report.md").read_text()
    assert table in text and "![Success vs training budget](success_vs_budget.png)" in text
    assert "estimated from samples_per_s" in text and "snapflow bench budget" in text


def test_a_run_without_a_training_log_is_refused_with_its_name(tmp_path):
    (tmp_path / "run" / "checkpoints" / "step_00000100").mkdir(parents=True)
    run = BudgetRun(label="t", run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="no metrics.jsonl"):
        budget_result([run], {"t": run_checkpoints(run.run_dir)}, {"cases": {}})


def test_a_snapflow_curve_can_carry_the_teacher_time_up_to_its_init_checkpoint(tmp_path):
    teacher = _fake_run(tmp_path / "teacher")  # 0.1 s per step
    (teacher / "checkpoints" / "step_00000300" / "info.json").write_text('{"step": 300}')
    (teacher / "latest").write_text("checkpoints/step_00000300\n")
    snap = _fake_run(tmp_path / "snap", steps=(50, 100), val_every=50, samples_per_s=40.0)
    job = yaml.safe_load((snap / "train_job.yaml").read_text())
    (snap / "train_job.yaml").write_text(yaml.safe_dump({**job, "init_checkpoint": str(teacher)}))
    assert init_checkpoint_step(snap) == 300
    offset = training_seconds_at(teacher, init_checkpoint_step(snap))
    assert offset == pytest.approx(30.0)
    run = BudgetRun(label="snapflow@1", run_dir=str(snap), num_steps=1, sampler_mode="jump",
                    offset_s=offset)
    checkpoints = {run.label: run_checkpoints(snap)}
    cases = budget_cases([run], checkpoints, n_act=10)
    curve = budget_result([run], checkpoints, _closed_loop(cases, {c.name: 1 for c in cases}))
    assert [p["train_s"] for p in curve["runs"][0]["points"]] == pytest.approx([40.0, 50.0])
    with pytest.raises(ConfigError, match="no init_checkpoint"):
        init_checkpoint_step(teacher)
