# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench latency --variant ov:backend=openvino,...``: parsing and one run."""

import json

import pytest
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.cli import main as snapflow
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.evaluation.latency_bench import BenchVariant, parse_variant


def test_openvino_variants_parse_with_threads_and_precision():
    variant = parse_variant("ov:backend=openvino,threads=1,precision=bfloat16,steps=1+10")
    assert variant == BenchVariant("ov", threads=1, steps=(1, 10), backend="openvino",
                                   precision="bfloat16")
    assert parse_variant("ov8:backend=openvino,precision=int8").precision == "int8"
    for bad, message in (
            ("x:backend=openvino,precision=float16", "takes precision float32, int8, bfloat16"),
            ("x:backend=onnxruntime,precision=bfloat16", "bfloat16: openvino"),
            ("x:backend=openvino,providers=cuda", "providers are an onnxruntime option"),
            ("x:backend=openvino,accelerate=compile", "backend=openvino takes threads"),
            ("x:precision=bfloat16", "backend=torch takes precision float32")):
        with pytest.raises(ConfigError, match=message):
            parse_variant(bad)


@pytest.mark.slow
def test_cli_runs_an_openvino_variant_beside_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    pytest.importorskip("openvino")
    checkpoint = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "lat.json"
    code = snapflow(["bench", "latency", "--checkpoint", str(checkpoint), "--steps", "1,2",
                     "--repeats", "2", "--warmup", "1", "--device", "cpu", "--no-publish",
                     "--variant", "ort:backend=onnxruntime,threads=1",
                     "--variant", "ov:backend=openvino,threads=1",
                     "--variant", "ov8:backend=openvino,threads=1,precision=int8",
                     "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    for name in ("ov", "ov8"):
        entry = report["variants"][name]
        assert "error" not in entry, entry.get("error")
        assert entry["path"] == "openvino" and entry["providers"] == ["OpenVINO CPU"]
        assert set(entry["results"]) == {"1", "2"}
        assert entry["results"]["2"]["e2e_ms_p50"] > 0
    assert report["variants"]["ov8"]["options"] == {"precision": "int8"}
