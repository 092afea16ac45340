# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Closed-loop results without ROS: the Wilson interval, episode summaries, cases, table, plots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from snapflow_ros.cli.bench import sim_benchmark_cases
from snapflow_ros.config_fields import ConfigError, config_to_dict
from snapflow_ros.evaluation.closed_loop import (
    ClosedLoopCase,
    ClosedLoopConfig,
    EpisodeResult,
    closed_loop_report_markdown,
    format_table,
    summarize_episodes,
    wilson_interval,
    write_closed_loop_report,
)


@pytest.mark.parametrize(("successes", "trials", "low", "high"), [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634),
    (7, 50, 0.0695, 0.2619), (45, 50, 0.7864, 0.9565)])
def test_wilson_interval_matches_reference_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_contains_the_rate_and_narrows_with_more_trials():
    for trials in (1, 3, 20, 400):
        for successes in range(0, trials + 1, max(trials // 7, 1)):
            low, high = wilson_interval(successes, trials)
            assert 0.0 <= low <= successes / trials <= high <= 1.0
    wide, narrow = wilson_interval(4, 10), wilson_interval(40, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _episode(seed, success, reward, latencies=(10.0, 20.0), first=None):
    steps = first if success else 400
    return EpisodeResult(seed=seed, success=success, max_reward=reward, steps=steps,
                         first_success_step=first, sim_time_s=steps * 0.02, wall_time_s=3.0,
                         inference_ms=list(latencies), chunks=40)


def test_summary_reports_success_ci_reward_stages_times_and_latency():
    episodes = [_episode(1, True, 4.0, first=250), _episode(2, False, 2.0),
                _episode(3, False, 0.0, latencies=(30.0,)), _episode(4, True, 4.0, first=300)]
    summary = summarize_episodes(episodes)
    assert summary["successes"] == 2 and summary["episodes"] == 4
    assert summary["success_rate"] == 0.5
    assert summary["success_ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    assert summary["mean_max_reward"] == pytest.approx(2.5)
    assert summary["max_reward_counts"] == {"0": 1, "1": 0, "2": 1, "3": 0, "4": 2}
    assert summary["mean_success_time_s"] == pytest.approx(5.5)  # steps 250 and 300
    assert summary["mean_episode_sim_s"] == pytest.approx((5.0 + 8.0 + 8.0 + 6.0) / 4)
    assert summary["latency_ms_p50"] == pytest.approx(20.0)
    assert summary["inferences"] == 7 and summary["timeouts"] == 0
    json.dumps(summary)  # JSON-ready


def test_benchmark_cases_cover_the_comparison_and_the_sweep_once():
    cases = sim_benchmark_cases("runs/teacher", "runs/snap", n_act=10, sweep=(1, 3, 10),
                                sweep_episodes=2)
    names = [c.name for c in cases]
    assert names[:3] == ["teacher@10", "teacher@1", "snapflow@1"]
    by_name = {c.name: c for c in cases}
    assert by_name["teacher@10"].sampler_mode == "euler"
    assert (by_name["teacher@1"].num_steps, by_name["teacher@1"].role) == (1, "naive")
    assert (by_name["snapflow@1"].sampler_mode, by_name["snapflow@1"].checkpoint) == (
        "jump", "runs/snap")
    # n_act 10 is the main comparison's: the sweep reuses it instead of running it twice.
    sweep = {(c.series, c.n_act) for c in cases if c.series}
    assert sweep == {(s, n) for s in ("teacher@10", "snapflow@1") for n in (1, 3, 10)}
    assert len(names) == len(set(names)) == 3 + 4
    assert all(c.episodes == 2 for c in cases if c.role == "sweep")
    assert [c.name for c in sim_benchmark_cases("t", None, sweep=())] == [
        "teacher@10", "teacher@1"]


def _fake_result():
    cases = sim_benchmark_cases("t", "s", n_act=10, sweep=(1, 10))
    result = {"config": {"task": "transfer_cube", "seed_start": 100000, "episodes": 2,
                         "episode_steps": 400}, "cases": {}, "seconds": 60.0}
    for index, case in enumerate(cases):
        episodes = [_episode(1, index % 2 == 0, 4.0 if index % 2 == 0 else 1.0, first=200),
                    _episode(2, False, 1.0)]
        result["cases"][case.name] = {"case": config_to_dict(case), "summary":
                                      summarize_episodes(episodes), "episodes": []}
    return result


def test_table_and_report_show_every_case_with_its_interval(tmp_path):
    result = _fake_result()
    table = format_table(result)
    assert table.count("\n") == 2 + len(result["cases"])
    assert "| teacher@10 | 10 | euler | 10 | 50% (1/2) | 9-91% |" in table
    report = write_closed_loop_report(result, tmp_path / "report")
    assert {p.name for p in report.iterdir()} == {"report.md", "success.png",
                                                  "success_vs_n_act.png", "reward_stages.png"}
    assert all(p.stat().st_size > 1000 for p in report.glob("*.png"))
    assert "snapflow@1 n_act=1" in (report / "report.md").read_text()


def test_bad_settings_are_refused_when_the_case_or_config_is_made():
    with pytest.raises(ConfigError, match="checkpoint"):
        ClosedLoopCase(name="x", checkpoint="")
    with pytest.raises(ConfigError, match="sampler_mode"):
        ClosedLoopCase(name="x", checkpoint="c", sampler_mode="rk4")
    with pytest.raises(ConfigError, match="image_size"):
        ClosedLoopConfig(image_size=64)


def test_summary_counts_episodes_that_touched_the_post_only_where_there_is_one():
    plain = [_episode(1, True, 4.0, first=250), _episode(2, False, 2.0)]
    assert summarize_episodes(plain)["obstacle_touched"] is None
    post = [dataclasses.replace(e, obstacle_touched=touched)
            for e, touched in zip(plain + [_episode(3, False, 1.0)], (False, True, True))]
    summary = summarize_episodes(post)
    assert summary["obstacle_touched"] == 2
    assert post[1].to_dict()["obstacle_touched"] is True
    result = {"config": {"task": "transfer_cube_obstacle", "seed_start": 100000, "episodes": 3,
                         "episode_steps": 400},
              "cases": {"teacher@1": {"case": {"num_steps": 1, "sampler_mode": "euler",
                                               "n_act": 10}, "summary": summary}}}
    assert "teacher@1 2/3" in closed_loop_report_markdown(result, [])
