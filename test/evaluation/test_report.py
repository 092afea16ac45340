# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Report tables and the all-or-nothing report directory."""

import pytest

from snapflow_ros.evaluation import report


def _metrics(steps, mode, mse):
    return {"steps": steps, "mode": mode, "mse_mean": mse, "mse_median": mse, "mse_p90": mse,
            "mse_p95": 2 * mse, "mse_std": 0.1 * mse, "cos_sim": 0.9, "spread": 0.01,
            "latency_ms_p50": 5.0, "latency_ms_p95": 7.5, "num_samples": 3,
            "per_joint_mse": [{"name": "a", "mse": mse}, {"name": "b", "mse": None}],
            "error_by_chunk_position": [mse, None], "per_sample_mse": [mse, mse, 2 * mse]}


@pytest.fixture
def result():
    return {
        "checkpoints": {
            "teacher": {"stage": "teacher", "default_mode": "euler", "results": {
                "1": _metrics(1, "euler", 0.02), "10": _metrics(10, "euler", 0.01)}},
            "snap": {"stage": "snapflow", "default_mode": "jump", "results": {
                "1": _metrics(1, "jump", 0.0066), "1_euler": _metrics(1, "euler", 0.03)}},
        },
        "episodes": [{"index": 0, "name": "ep0", "source": "bags/ep0", "frames": 4}],
        "split": "validation", "num_episodes_loaded": 3,
        "config": {"val_fraction": 0.4, "split_seed": -1, "seed": 7, "device": "cpu"},
        "trajectories": [{"name": "ep0", "time_s": [0.0, 0.02, 0.04],
                          "action_names": ["a", "b"],
                          "recorded": [[0.0, 1.0], [0.1, 1.0], [0.2, 1.1]],
                          "predicted": {"snap/1": [[0.0, 1.1], [0.1, 0.9], [0.3, 1.0]]}}],
    }


def test_table_rows_and_change_against_the_ten_step_teacher(result):
    table = report.format_table(result).splitlines()
    assert table[0].startswith("| Checkpoint | Stage | Steps | Sampler | MSE mean | vs ref |")
    assert len(table) == 2 + 4
    rows = {tuple(c.strip() for c in line.split("|")[1:5]): line for line in table[2:]}
    assert "| ref |" in rows[("teacher", "teacher", "10", "euler")]
    assert "| -34.0% |" in rows[("snap", "snapflow", "1", "jump")]
    assert "| +100.0% |" in rows[("teacher", "teacher", "1", "euler")]
    # The default sampler comes before the other one at the same step count.
    assert table.index(rows[("snap", "snapflow", "1", "jump")]) < table.index(
        rows[("snap", "snapflow", "1", "euler")])


def test_report_directory_holds_markdown_and_plots(result, tmp_path):
    out = report.write_report(result, tmp_path / "rep")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["report.md", "mse_vs_steps.png", "mse_distribution.png",
                            "per_joint_mse.png", "error_by_chunk_position.png",
                            "trajectory_0_ep0.png"])
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if
               n.endswith(".png"))
    text = (out / "report.md").read_text()
    assert "Scored episodes: 1 of 3 loaded" in text and "split seed 7" in text
    assert "| snap | snapflow | 1 | jump |" in text
    assert "![Trajectory: ep0](trajectory_0_ep0.png)" in text


def test_a_failing_plot_leaves_no_partial_report(result, tmp_path, monkeypatch):
    previous = tmp_path / "rep"
    report.write_report(result, previous)
    before = sorted(p.name for p in previous.iterdir())

    def broken(*_args):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "plot_trajectory", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        report.write_report(result, tmp_path / "rep")
    with pytest.raises(RuntimeError):
        report.write_report(result, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in previous.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"], "temporary folder left"
