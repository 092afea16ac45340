# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The latency benchmark: per-stage timings, the limit, variants, checkpoints, the table."""

import pytest
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.evaluation.latency_bench import (
    BenchVariant,
    LatencyBenchConfig,
    limit_and_ratios,
    markdown_table,
    parse_variant,
    run_latency_benchmark,
)
from snapflow_ros.evaluation.latency_stages import LATENCY_BENCH_STAGES

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
        assert set(result["stages"]) == set(LATENCY_BENCH_STAGES)
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


def test_named_vlas_build_at_tiny_dimensions_and_take_speed_options():
    pytest.importorskip("lerobot")
    config = LatencyBenchConfig(policy="pi05", size="tiny", steps=(1,), repeats=2, warmup=1,
                                device="cpu", publish=False)
    report = run_latency_benchmark(config, [parse_variant("trimmed:prompt_bucket=16")])
    assert report["policy_type"] == "pi05" and report["camera"]["height"] == 224
    assert report["results"]["1"]["prefix_ms_p50"] > 0
    assert report["variants"]["trimmed"]["options"] == {"prompt_bucket": 16}


@pytest.mark.slow
def test_onnxruntime_variants_run_the_exported_checkpoint_beside_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    checkpoint = write_tiny_checkpoint(tmp_path / "run")
    config = LatencyBenchConfig(checkpoint=str(checkpoint), steps=(1, 2), repeats=2, warmup=1,
                                device="cpu", publish=False)
    variants = [parse_variant("torch:threads=1"),
                parse_variant("ort:backend=onnxruntime,threads=1"),
                parse_variant("ort_int8:backend=onnxruntime,threads=1,precision=int8")]
    report = run_latency_benchmark(config, variants)
    for name in ("ort", "ort_int8"):
        entry = report["variants"][name]
        assert "error" not in entry, entry.get("error")
        assert entry["path"] == "onnxruntime" and entry["threads"] == 1
        assert set(entry["results"]) == {"1", "2"}
        assert RESULT_KEYS <= set(entry["results"]["2"])
    assert report["variants"]["ort_int8"]["options"] == {"precision": "int8"}
    assert "path=onnxruntime, precision=int8" in markdown_table(report)
    for bad, message in (("x:backend=tflite", "backend"), ("x:precision=int8", "onnxruntime"),
                         ("x:backend=onnxruntime,accelerate=compile", "torch options")):
        with pytest.raises(ConfigError, match=message):
            parse_variant(bad)
