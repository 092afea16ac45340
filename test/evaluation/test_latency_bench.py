# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench latency``: per-stage timings, the limit, variants, JSON and markdown."""

import json
import math

import pytest
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.evaluation.latency_bench import (
    STAGES,
    BenchVariant,
    LatencyBenchConfig,
    limit_and_ratios,
    main,
    markdown_table,
    parse_variant,
    run_latency_benchmark,
)

FAST = ["--repeats", "3", "--warmup", "1", "--device", "cpu", "--threads", "1"]
RESULT_KEYS = {"e2e_ms_p50", "e2e_ms_p95", "prefix_ms_p50", "expert_ms_p50", "limit_ms",
               "ratio_to_limit"}


def test_variants_parse_into_paths_threads_and_speed_options():
    variant = parse_variant("graph_bf16:accelerate=cuda_graph,dtype=bfloat16,prompt_bucket=16")
    assert variant.name == "graph_bf16" and variant.path == "fast"
    assert variant.options == {"accelerate": "cuda_graph", "dtype": "bfloat16",
                               "prompt_bucket": 16}
    assert variant.fast_config().prompt_bucket == 16
    naive = parse_variant("naive:path=naive,threads=2,frame_prep=inference,steps=1+10")
    assert (naive.path, naive.threads, naive.frame_prep) == ("naive", 2, "inference")
    assert naive.steps == (1, 10)
    assert parse_variant("plain") == BenchVariant("plain")
    for bad, message in (("x:accelerate=warp", "accelerate"), ("x:speed=11", "speed"),
                         ("x:path=magic", "path"), (":dtype=bfloat16", "name"),
                         ("x:threads=two", "threads"), ("x:dtype", "key=value"),
                         ("x:steps=1+0", "steps"), ("x:steps=1,2", "key=value")):
        with pytest.raises(ConfigError, match=message):
            parse_variant(bad)


def test_limit_is_prefix_plus_one_expert_call_of_the_one_step_run():
    def result(steps, e2e, prefix, expert_call):
        return {"steps": steps, "e2e_ms_p50": e2e, "prefix_ms_p50": prefix,
                "expert_ms_p50": expert_call, "expert_total_ms_p50": expert_call * steps}

    results = {"1": result(1, 6.0, 3.0, 2.0), "10": result(10, 25.0, 3.1, 1.9)}
    limit_and_ratios(results)
    assert results["1"]["limit_ms"] == results["10"]["limit_ms"] == 5.0
    assert results["1"]["ratio_to_limit"] == pytest.approx(1.2)
    assert results["10"]["ratio_to_limit"] == pytest.approx(5.0)
    assert results["10"]["expert_total_vs_1step"] == pytest.approx(9.5)


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
        assert set(entry["stages"]) == set(STAGES)
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


def test_variants_share_one_model_and_a_failing_one_does_not_stop_the_rest():
    config = LatencyBenchConfig(steps=(1,), repeats=2, warmup=1, device="cpu", publish=False,
                                transport="compressed", camera_height=96, camera_width=160,
                                frame_prep="inference")
    variants = [parse_variant("naive:path=naive"), parse_variant("sampler:path=sampler"),
                parse_variant("fast"), parse_variant("graph:accelerate=cuda_graph"),
                parse_variant("ten:steps=10")]
    report = run_latency_benchmark(config, variants)
    assert list(report["variants"]) == ["naive", "sampler", "fast", "graph", "ten"]
    assert list(report["variants"]["ten"]["results"]) == ["10"]  # its own step counts
    for name in ("naive", "sampler", "fast"):
        result = report["variants"][name]["results"]["1"]
        assert RESULT_KEYS <= set(result) and result["frame_prep"] == "inference"
        assert result["stages"]["decode"]["p50"] > 0 and result["stages"]["resize"]["p50"] > 0
    assert report["results"] == report["variants"]["naive"]["results"]
    graph = report["variants"]["graph"]
    if not graph["results"]:  # no GPU here: reported, not raised
        assert "CUDA" in graph["error"]
        assert "failed" in markdown_table(report)


def test_checkpoints_are_benchmarked_as_they_are(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "run", image_size=24, chunk_size=8)
    config = LatencyBenchConfig(checkpoint=str(checkpoint), steps=(1, 10), repeats=2, warmup=1,
                                device="cpu", publish=False)
    report = run_latency_benchmark(config)
    assert report["policy"].startswith("checkpoint") and report["chunk_size"] == 8
    assert report["camera"]["height"] == 24
    assert report["results"]["10"]["expert_total_vs_1step"] > 1


def test_the_ros_publish_stage_runs_where_rclpy_is_installed():
    pytest.importorskip("rclpy")
    config = LatencyBenchConfig(steps=(1,), repeats=2, warmup=1, device="cpu")
    report = run_latency_benchmark(config)
    assert report["publish_stage"] is True
    assert report["results"]["1"]["stages"]["publish"]["p50"] > 0


def test_named_vlas_build_at_tiny_dimensions_and_take_speed_options():
    pytest.importorskip("lerobot")
    config = LatencyBenchConfig(policy="pi05", size="tiny", steps=(1,), repeats=2, warmup=1,
                                device="cpu", publish=False)
    report = run_latency_benchmark(config, [parse_variant("trimmed:prompt_bucket=16")])
    assert report["policy_type"] == "pi05" and report["camera"]["height"] == 224
    assert report["results"]["1"]["prefix_ms_p50"] > 0
    assert report["variants"]["trimmed"]["options"] == {"prompt_bucket": 16}


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

    measure = latency_bench._measure_steps

    def interrupted_at_two_steps(pipeline, frames, state, steps, *args):
        if steps == 2:
            raise KeyboardInterrupt  # what `timeout --signal=INT` delivers
        return measure(pipeline, frames, state, steps, *args)

    monkeypatch.setattr(latency_bench, "_measure_steps", interrupted_at_two_steps)
    out = tmp_path / "partial.json"
    code = main(["--steps", "1,2,4", "--variant", "a", "--variant", "b", "--no-publish",
                 "--json", str(out), *FAST])
    assert code == 130
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and list(report["variants"]) == ["a"]
    assert set(report["results"]) == {"1"} and report["results"]["1"]["ratio_to_limit"] > 0
