# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Report columns and plot of the K-sample distribution metrics, and old results without them."""

import pytest

from snapflow_ros.evaluation import report


def _metrics(steps, mse, *, best=None, between=None, coverage=None, draws=8):
    return {"steps": steps, "mode": "euler", "mse_mean": mse, "mse_median": mse,
            "mse_p90": mse, "mse_p95": mse, "mse_std": 0.0, "cos_sim": 0.9, "spread": None,
            "latency_ms_p50": None, "latency_ms_p95": None, "num_samples": 4,
            "per_joint_mse": [{"name": "a", "mse": mse}], "error_by_chunk_position": [mse],
            "per_sample_mse": [mse] * 4, "samples_per_frame": draws,
            "best_of_k_mse_mean": best, "best_of_k_mse_median": best, "sample_spread": 0.2,
            "between_modes_share": between, "mode_coverage": coverage,
            "multi_truth_frames": 0 if between is None else 2}


def _result(entries):
    return {"checkpoints": {"teacher": {"stage": "teacher", "default_mode": "euler",
                                        "results": entries}},
            "episodes": [], "split": "all", "config": {"samples_per_frame": 8},
            "multi_truth": {"frames_with_matching_observation": 3, "distinct_truth_mse": 0.5,
                            "distinct_truth_mse_source": "distinct_truth_mse",
                            "truth_match_tolerance": 1e-6},
            "trajectories": []}


@pytest.fixture
def result():
    return _result({"1": _metrics(1, 1.0, best=1.0, between=1.0, coverage=0.0),
                    "10": _metrics(10, 2.0, best=0.01, between=0.125, coverage=1.0)})


def test_the_table_shows_best_of_k_and_modes_beside_the_mse(result):
    header, _, one, ten = report.format_table(result).splitlines()
    columns = [c.strip() for c in header.split("|")[1:-1]]
    assert columns[4:10] == ["MSE mean", "vs ref", "best-of-K MSE", "between modes",
                             "mode coverage", "sample spread"]
    cells = [c.strip() for c in ten.split("|")[1:-1]]
    assert cells[6:9] == ["0.01000", "12.5%", "100.0%"]
    assert [c.strip() for c in one.split("|")[1:-1]][6:9] == ["1", "100.0%", "0.0%"]


def test_frames_without_several_truths_show_a_dash():
    table = report.format_table(_result({"1": _metrics(1, 1.0, best=0.5)}))
    cells = [c.strip() for c in table.splitlines()[2].split("|")[1:-1]]
    assert cells[6:9] == ["0.50000", "-", "-"]


def test_results_without_k_samples_keep_the_old_table(tmp_path):
    # An offline_eval.json written before the distribution metrics (or with K = 1, or a live
    # replay): the same columns as before, so readers of old files see what they saw.
    old = _result({"1": {k: v for k, v in _metrics(1, 1.0).items()
                         if k not in ("samples_per_frame", "best_of_k_mse_mean")}})
    single = _result({"1": _metrics(1, 1.0, draws=1)})
    for result in (old, single):
        header = report.format_table(result).splitlines()[0]
        assert [c.strip() for c in header.split("|")[1:-1]] == list(report.TABLE_COLUMNS)
    written = {p.name for p in report.write_report(single, tmp_path / "rep").iterdir()}
    assert "modes_vs_steps.png" not in written


def test_the_report_has_the_modes_plot_and_says_how_truths_were_found(result, tmp_path):
    out = report.write_report(result, tmp_path / "rep")
    png = (out / "modes_vs_steps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    assert "![Best-of-K MSE and samples between modes](modes_vs_steps.png)" in text
    assert "K = 8 noise samples per frame" in text
    assert "Frames with several truths: 2 (3 with a matching observation" in text
    assert "MSE above 0.50000, distinct_truth_mse" in text
