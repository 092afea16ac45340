# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench latency``: the flags, the JSON and markdown it writes, its exit codes."""

import json
import math

import pytest

from snapflow_ros.cli import main as snapflow
from snapflow_ros.evaluation.latency_stages import LATENCY_BENCH_STAGES

FAST = ["--repeats", "3", "--warmup", "1", "--device", "cpu", "--threads", "1"]
RESULT_KEYS = {"e2e_ms_p50", "e2e_ms_p95", "prefix_ms_p50", "expert_ms_p50", "limit_ms",
               "ratio_to_limit"}


def main(argv: list[str]) -> int:
    """``snapflow bench latency ARGV``, in this process."""
    return snapflow(["bench", "latency", *argv])


def test_cli_times_every_stage_and_writes_json_and_markdown(tmp_path, capsys):
    out_json, out_md = tmp_path / "lat.json", tmp_path / "lat.md"
    code = main(["--policy", "compact", "--steps", "1,2", "--no-publish", "--json",
                 str(out_json), "--markdown", str(out_md), *FAST])
    assert code == 0
    report = json.loads(out_json.read_text())
    assert set(report["results"]) == {"1", "2"}
    for entry in report["results"].values():
        assert RESULT_KEYS <= set(entry)
        assert all(entry[key] > 0 for key in RESULT_KEYS)
        assert set(entry["stages"]) == set(LATENCY_BENCH_STAGES)
        assert math.isnan(entry["stages"]["publish"]["p50"])  # --no-publish
    one = report["results"]["1"]
    assert one["limit_ms"] == pytest.approx(one["prefix_ms_p50"] + one["expert_ms_p50"])
    assert report["parameters"] > 1e6 and report["chunk_size"] == 50  # the demo configuration
    assert report["camera"] == {"height": 128, "width": 128, "transport": "raw"}
    assert report["command"][:3] == ["snapflow", "bench", "latency"]
    assert "load_average" in report["machine"] and report["machine"]["cpus"] >= 1
    table = out_md.read_text()
    assert table == capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| default |")]
    assert len(rows) == 2 and "n/a" in rows[0]  # the publish column


@pytest.mark.parametrize(("argv", "message"), [
    (["--camera-size", "480by640"], "camera-size"),
    (["--variant", "a", "--variant", "a"], "unique"),
    (["--variant", "a:accelerate=warp"], "accelerate"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert main([*argv, "--no-publish", *FAST]) == 2
    assert message in capsys.readouterr().err


def test_an_interrupted_run_still_writes_what_it_measured(tmp_path, monkeypatch):
    from snapflow_ros.evaluation import latency_bench

    measure = latency_bench.measure_steps

    def interrupted_at_two_steps(stages, frames, state, steps, **kwargs):
        if steps == 2:
            raise KeyboardInterrupt  # what `timeout --signal=INT` delivers
        return measure(stages, frames, state, steps, **kwargs)

    monkeypatch.setattr(latency_bench, "measure_steps", interrupted_at_two_steps)
    out = tmp_path / "partial.json"
    code = main(["--steps", "1,2,4", "--variant", "a", "--variant", "b", "--no-publish",
                 "--json", str(out), *FAST])
    assert code == 130
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and list(report["variants"]) == ["a"]
    assert set(report["results"]) == {"1"} and report["results"]["1"]["ratio_to_limit"] > 0
